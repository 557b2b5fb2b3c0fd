"""qcompile.trt_build: argument checks and the missing-TensorRT error run everywhere; building
engines runs only where `import tensorrt` works."""

import importlib.util
import inspect
import sys
import types

import numpy as np
import onnx_ir as ir
import pytest

from qcompile import plugin_specs, trt_build
from qcompile.errors import MissingDependencyError, ModelError, QCompileError

HAVE_TRT = importlib.util.find_spec("tensorrt") is not None
needs_trt = pytest.mark.skipif(not HAVE_TRT, reason="TensorRT is not installed")


def int8_linear_model(path, k=64, n=16):
    """x[2, k] -> Q/DQ (int8, per tensor) -> MatMul with DQ(int8 weight, per channel) -> y."""
    x = ir.Value(name="x", type=ir.TensorType(ir.DataType.FLOAT), shape=ir.Shape([2, k]))
    const = lambda name, a: ir.Value(name=name, const_value=ir.tensor(a, name=name))  # noqa: E731
    s, zp = const("s", np.float32(0.05)), const("zp", np.int8(0))
    w, ws = const("w", np.ones((k, n), np.int8)), const("ws", np.full(n, 0.01, np.float32))
    q = ir.node("QuantizeLinear", [x, s, zp])
    dq = ir.node("DequantizeLinear", [q.outputs[0], s, zp])
    wdq = ir.node("DequantizeLinear", [w, ws], attributes={"axis": 1})
    mm = ir.node("MatMul", [dq.outputs[0], wdq.outputs[0]])
    mm.outputs[0].name = "y"
    graph = ir.Graph(
        [x], [mm.outputs[0]], nodes=[q, dq, wdq, mm], initializers=[s, zp, w, ws], opset_imports={"": 21}
    )
    ir.save(ir.Model(graph, ir_version=10), path)
    return path


def test_find_plugin_library(tmp_path, monkeypatch):
    monkeypatch.delenv(trt_build.PLUGIN_LIBRARY_ENV, raising=False)
    assert trt_build.find_plugin_library(root=tmp_path) is None
    default = tmp_path / "plugins" / "build" / "trt" / trt_build.PLUGIN_LIBRARY_NAME
    default.parent.mkdir(parents=True)
    default.write_bytes(b"")
    assert trt_build.find_plugin_library(root=tmp_path) == default
    other = tmp_path / "elsewhere.so"
    other.write_bytes(b"")
    monkeypatch.setenv(trt_build.PLUGIN_LIBRARY_ENV, str(other))
    assert trt_build.find_plugin_library(root=tmp_path) == other.resolve()
    monkeypatch.setenv(trt_build.PLUGIN_LIBRARY_ENV, str(tmp_path / "missing.so"))
    with pytest.raises(QCompileError, match="missing.so does not exist"):
        trt_build.find_plugin_library(root=tmp_path)


def test_check_shapes():
    assert trt_build.check_shapes({"x": ([1, 8], [4, 8], [16, 8])}) == {"x": ((1, 8), (4, 8), (16, 8))}
    for bad, word in (
        ({"x": ([1, 8], [4, 8])}, "min, opt, max"),
        ({"x": ([1], [4, 8], [16, 8])}, "ranks"),
        ({"x": ([4, 8], [1, 8], [16, 8])}, "min <= opt <= max"),
        ({"x": ([0, 8], [1, 8], [1, 8])}, "0 <"),
    ):
        with pytest.raises(QCompileError, match=word):
            trt_build.check_shapes(bad)


def test_arguments_are_checked_before_tensorrt_is_needed(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        trt_build.build_engine(tmp_path / "none.onnx", tmp_path / "m.engine")
    model = int8_linear_model(tmp_path / "m.onnx")
    with pytest.raises(QCompileError, match="serialize_plugins needs a plugin_library"):
        trt_build.build_engine(model, tmp_path / "m.engine", serialize_plugins=True)


@pytest.mark.skipif(HAVE_TRT, reason="TensorRT is installed")
def test_missing_tensorrt_is_a_user_error(tmp_path):
    model = int8_linear_model(tmp_path / "m.onnx")
    with pytest.raises(MissingDependencyError, match="TensorRT is not installed: pip install tensorrt"):
        trt_build.build_engine(model, tmp_path / "m.engine")
    assert not (tmp_path / "m.engine").exists()


@needs_trt
def test_build_a_strongly_typed_int8_engine(tmp_path):
    import tensorrt as trt

    lines = []
    engine = trt_build.build_engine(
        int8_linear_model(tmp_path / "m.onnx"),
        tmp_path / "m.engine",
        timing_cache=tmp_path / "cache.bin",
        workspace_mb=256,
        progress=lines.append,
    )
    runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
    plan = runtime.deserialize_cuda_engine(engine.read_bytes())
    assert plan is not None and plan.num_io_tensors == 2
    assert (tmp_path / "cache.bin").stat().st_size > 0
    assert lines, "the progress monitor reported nothing"


@needs_trt
def test_build_with_the_plugin_library(tmp_path):
    library = trt_build.find_plugin_library()
    if library is None:
        pytest.skip(
            "the plugin library is not built (set QC_PLUGIN_LIB or build plugins/ with "
            "QC_BUILD_TRT_PLUGINS=ON)"
        )
    n, k = 16, 128
    x = ir.Value(name="x", type=ir.TensorType(ir.DataType.FLOAT16), shape=ir.Shape(["m", k]))
    const = lambda name, a: ir.Value(name=name, const_value=ir.tensor(a, name=name))  # noqa: E731
    inputs = [x, const("w", np.full((n, k // 2), 0x11, np.int8)), const("s", np.ones((n, 1), np.float16))]
    node = ir.node(
        "QcW4A16Gemm",
        inputs,
        domain="qcompile",
        attributes=plugin_specs.node_attributes("QcW4A16Gemm", N=n, K=k),
    )
    graph = ir.Graph(
        [x], [node.outputs[0]], nodes=[node], initializers=inputs[1:], opset_imports={"": 21, "qcompile": 1}
    )
    ir.save(ir.Model(graph, ir_version=10), tmp_path / "p.onnx")
    engine = trt_build.build_engine(
        tmp_path / "p.onnx",
        tmp_path / "p.engine",
        plugin_library=library,
        serialize_plugins=True,
        shapes={"x": ((1, k), (8, k), (64, k))},
    )
    assert engine.stat().st_size > 0


class _FakeTrt:
    """Stands in for the `tensorrt` module: the few names build_engine itself uses."""

    def __init__(self, calls, library_registered=False, version="10.16.0"):
        self.__version__ = version
        enum = lambda *names: types.SimpleNamespace(**{n: i for i, n in enumerate(names)})  # noqa: E731
        self.NetworkDefinitionCreationFlag = enum("STRONGLY_TYPED")
        self.MemoryPoolType = enum("WORKSPACE")

        class IProgressMonitor:
            def __init__(self):
                pass

        class Registry:
            def get_creator(self, name, version, namespace):
                return object() if library_registered else None

            def load_library(self, path):
                calls.append(("load_library", path))
                return object()

        self.IProgressMonitor = IProgressMonitor
        self.get_plugin_registry = Registry


class _FakePolygraphy:
    """Stands in for polygraphy.backend.trt: records each loader's arguments after binding them to the
    real Polygraphy signature (a misspelt or removed keyword fails here), and runs the config callable
    on a fake network with one dynamic input `x`, as EngineBytesFromNetwork would."""

    def __init__(self, calls, fail=False):
        from polygraphy.backend import trt as real

        def recorder(name, result=None):
            def make(*args, **kwargs):
                inspect.signature(getattr(real, name)).bind(*args, **kwargs)
                calls.append((name, args, kwargs))
                return result(*args, **kwargs) if result else types.SimpleNamespace()

            return make

        class Config:
            plugins_to_serialize = []

        def create_config(**kwargs):
            def call(builder, network):
                config = Config()
                monitor = kwargs.get("progress_monitor")
                if monitor is not None:
                    monitor.phase_start("build", None, 2)
                    monitor.step_complete("build", 0)
                return config

            return call

        def engine_bytes(network, make_config, save_timing_cache=None):
            def build():
                x = types.SimpleNamespace(name="x", shape=(-1, 64))
                network = types.SimpleNamespace(num_inputs=1, get_input=lambda i: x)
                config = make_config(object(), network)
                calls.append(("plugins_to_serialize", config.plugins_to_serialize))
                if fail:
                    from polygraphy.exception import PolygraphyException

                    raise PolygraphyException("Invalid Engine. Please ensure the engine was built correctly")
                return b"plan"

            return build

        class Profile(dict):
            def add(self, name, min, opt, max):
                inspect.signature(real.Profile.add).bind(self, name, min=min, opt=opt, max=max)
                self[name] = (min, opt, max)
                return self

        self.Profile = Profile
        self.NetworkFromOnnxPath = recorder("NetworkFromOnnxPath")
        self.CreateConfig = recorder("CreateConfig", create_config)
        self.EngineBytesFromNetwork = recorder("EngineBytesFromNetwork", engine_bytes)


def _fakes(monkeypatch, **trt_options):
    calls = []
    fake = _FakeTrt(calls, **trt_options)
    monkeypatch.setitem(sys.modules, "tensorrt", fake)
    monkeypatch.setattr(trt_build, "_polygraphy_trt", lambda: _FakePolygraphy(calls))
    return fake, calls


def test_build_engine_wiring_through_polygraphy_loaders(tmp_path, monkeypatch):
    fake, calls = _fakes(monkeypatch)
    library = tmp_path / "libqc_trt_plugins.so"
    library.write_bytes(b"")
    lines = []
    out = trt_build.build_engine(
        int8_linear_model(tmp_path / "m.onnx"),
        tmp_path / "m.engine",
        plugin_library=library,
        serialize_plugins=True,
        timing_cache=tmp_path / "t.cache",
        workspace_mb=8,
        shapes={"x": ((1, 64), (4, 64), (8, 64))},
        progress=lines.append,
    )
    assert out.read_bytes() == b"plan" and not list(tmp_path.glob(".*"))  # no temporary left
    names = [c[0] for c in calls]
    assert names == [
        "load_library",
        "NetworkFromOnnxPath",
        "CreateConfig",
        "EngineBytesFromNetwork",
        "plugins_to_serialize",
    ]
    assert calls[0] == ("load_library", str(library.resolve()))
    assert calls[1][1] == (str(tmp_path / "m.onnx"),) and calls[1][2] == {"strongly_typed": True}
    config = calls[2][2]
    assert config["tf32"] is True and config["version_compatible"] is True
    assert config["memory_pool_limits"] == {fake.MemoryPoolType.WORKSPACE: 8 << 20}
    assert config["load_timing_cache"] == str(tmp_path / "t.cache")
    assert config["profiles"] == [{"x": ((1, 64), (4, 64), (8, 64))}]
    assert calls[3][2] == {"save_timing_cache": str(tmp_path / "t.cache")}
    assert calls[4] == ("plugins_to_serialize", [str(library.resolve())])
    assert lines == ["build: started (2 steps)", "build: step 1/2"]


def test_tensorrt_11_networks_get_no_strongly_typed_flag_and_defaults_stay_tensorrts(tmp_path, monkeypatch):
    _, calls = _fakes(monkeypatch, version="11.1.0")
    trt_build.build_engine(
        int8_linear_model(tmp_path / "m.onnx"), tmp_path / "m.engine", shapes={"x": ((1, 64),) * 3}
    )
    assert calls[0][2] == {"strongly_typed": False}
    config = calls[1][2]
    assert config["version_compatible"] is None and config["memory_pool_limits"] is None
    assert config["load_timing_cache"] is None and config["progress_monitor"] is None


def test_dynamic_inputs_need_shapes_and_registered_libraries_are_not_reloaded(tmp_path, monkeypatch):
    _, calls = _fakes(monkeypatch, library_registered=True)
    library = tmp_path / "lib.so"
    library.write_bytes(b"")
    model = int8_linear_model(tmp_path / "m.onnx")
    with pytest.raises(QCompileError, match=r"input\(s\) \['x'\] have dynamic dims"):
        trt_build.build_engine(model, tmp_path / "m.engine", plugin_library=library)
    assert not any(call[0] == "load_library" for call in calls)
    with pytest.raises(QCompileError, match="unknown input"):
        trt_build.build_engine(model, tmp_path / "m.engine", shapes={"y": ((1,), (1,), (1,))})
    assert not (tmp_path / "m.engine").exists()


def test_a_failed_build_is_one_error_and_writes_nothing(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setitem(sys.modules, "tensorrt", _FakeTrt(calls))
    monkeypatch.setattr(trt_build, "_polygraphy_trt", lambda: _FakePolygraphy(calls, fail=True))
    with pytest.raises(QCompileError, match="TensorRT could not build an engine from .*Invalid Engine"):
        trt_build.build_engine(
            int8_linear_model(tmp_path / "m.onnx"), tmp_path / "m.engine", shapes={"x": ((1, 64),) * 3}
        )
    assert not (tmp_path / "m.engine").exists()


@pytest.mark.parametrize(
    "version, strongly_typed_bit", [("10.0.1", True), ("10.16.0", True), ("11.1.0", False)]
)
def test_network_flags_per_version(version, strongly_typed_bit):
    fake = _FakeTrt([], version=version)
    expected = 1 << fake.NetworkDefinitionCreationFlag.STRONGLY_TYPED if strongly_typed_bit else 0
    assert trt_build.network_flags(fake) == expected


@pytest.mark.skipif(HAVE_TRT, reason="TensorRT is installed")
def test_compare_without_tensorrt_is_one_line_exit_2(tmp_path):
    import subprocess

    model = int8_linear_model(tmp_path / "m.onnx")
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"plan")
    command = [sys.executable, "-m", "qcompile.cli", "compare", str(model)]
    done = subprocess.run([*command, "--engine", str(engine)], capture_output=True, text=True)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "pip install tensorrt" in lines[0]
    missing = subprocess.run(
        [*command, "--engine", str(tmp_path / "none.engine")], capture_output=True, text=True
    )
    assert missing.returncode == 2 and "does not exist" in missing.stderr


def test_build_command_passes_the_timing_cache_and_refuses_to_overwrite(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from qcompile.cli import main

    _, calls = _fakes(monkeypatch)
    monkeypatch.setattr(trt_build, "find_plugin_library", lambda *a, **k: None)
    model = int8_linear_model(tmp_path / "m.onnx")
    args = ["build", str(model), "--shapes", "x:1x64,4x64,8x64", "--timing-cache", str(tmp_path / "t.cache")]
    done = CliRunner().invoke(main, args)
    assert done.exit_code == 0, done.output
    assert (tmp_path / "m.engine").read_bytes() == b"plan"
    (config,) = [c[2] for c in calls if c[0] == "CreateConfig"]
    assert config["load_timing_cache"] == str(tmp_path / "t.cache")
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 2 and "--force" in again.output
