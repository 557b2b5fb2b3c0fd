"""qcompile: a quantization compiler for NVIDIA GPUs (ONNX in; Q/DQ ONNX, plugin nodes, report out)."""

from qcompile.errors import QCompileError

__version__ = "0.1.0"
__all__ = ["QCompileError", "Recipe", "compile", "__version__"]


def __getattr__(name):
    # compile() and Recipe pull in onnx, onnxruntime and numpy; keep `import qcompile` light.
    if name == "compile":
        from qcompile.pipeline import compile

        return compile
    if name == "Recipe":
        from qcompile.recipe import Recipe

        return Recipe
    raise AttributeError(name)
