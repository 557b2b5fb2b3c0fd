"""Build a TensorRT engine from a quantized ONNX model (TensorRT 10 and 11, strongly typed), through
Polygraphy's loaders (NetworkFromOnnxPath, CreateConfig, EngineBytesFromNetwork).

Every TensorRT name used here exists in the Python bindings of TensorRT 10.0 and 11.1
(tests/trt/test_trt_names.py checks it against the bindings sources; the Polygraphy calls are
checked against its signatures). TensorRT cannot be installed where qcompile is developed, so this
module only runs where `import tensorrt` works. Polygraphy logs TensorRT's messages through its own
logger (POLYGRAPHY_LOG_LEVEL or `polygraphy.logger.G_LOGGER.severity`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

from qcompile.errors import MissingDependencyError, ModelError, OutputError, QCompileError

log = logging.getLogger(__name__)

PLUGIN_LIBRARY_ENV = "QC_PLUGIN_LIB"
PLUGIN_LIBRARY_NAME = "libqc_trt_plugins.so"
# Where `cmake -S plugins -B <dir> -DQC_BUILD_TRT_PLUGINS=ON` puts it, relative to the checkout.
_DEFAULT_BUILD_DIRS = ("plugins/build/trt", "plugins/build", "build/plugins/trt", "build/trt", "build")
_NOT_INSTALLED = (
    "TensorRT is not installed: pip install tensorrt (from NVIDIA's package index) to build engines; "
    "the quantized ONNX and its report were written (plugins/build.sh builds the plugin library)"
)

POLYGRAPHY_MISSING = "Polygraphy is not installed: pip install polygraphy (or qcompile[trt])"

Shapes = dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]]


def find_plugin_library(
    explicit: str | os.PathLike | None = None, *, root: Path | None = None
) -> Path | None:
    """The plugin library: `explicit`, else $QC_PLUGIN_LIB, else the default build dirs; None if absent.

    An explicit path or $QC_PLUGIN_LIB naming a missing file is an error, not a fallback.
    """
    for source, given in (
        ("plugin library", explicit),
        (f"${PLUGIN_LIBRARY_ENV}", os.environ.get(PLUGIN_LIBRARY_ENV)),
    ):
        if given:
            path = Path(given).expanduser()
            if not path.is_file():
                raise QCompileError(f"{source} {path} does not exist")
            return path.resolve()
    root = root or Path(__file__).resolve().parents[1]
    for folder in _DEFAULT_BUILD_DIRS:
        candidate = root / folder / PLUGIN_LIBRARY_NAME
        if candidate.is_file():
            return candidate
    return None


def check_shapes(shapes: Shapes | None) -> Shapes:
    """Validate an optimization profile: {input: (min, opt, max)}, same rank, min <= opt <= max."""
    checked: Shapes = {}
    for name, triple in (shapes or {}).items():
        if len(triple) != 3:
            raise QCompileError(f"input {name!r}: expected (min, opt, max) shapes, got {triple!r}")
        lo, opt, hi = (tuple(int(d) for d in s) for s in triple)
        if not len(lo) == len(opt) == len(hi):
            raise QCompileError(f"input {name!r}: min/opt/max shapes have different ranks: {lo}, {opt}, {hi}")
        if any(not 0 < a <= b <= c for a, b, c in zip(lo, opt, hi)):
            raise QCompileError(
                f"input {name!r}: need 0 < min <= opt <= max in every dim, got {lo}, {opt}, {hi}"
            )
        checked[name] = (lo, opt, hi)
    return checked


def import_tensorrt():
    try:
        import tensorrt
    except ImportError as exc:
        raise MissingDependencyError(_NOT_INSTALLED) from exc
    return tensorrt


def build_engine(
    onnx_path: str | os.PathLike,
    engine_path: str | os.PathLike,
    *,
    plugin_library: str | os.PathLike | None = None,
    serialize_plugins: bool = False,
    timing_cache: str | os.PathLike | None = None,
    workspace_mb: int | None = None,
    shapes: Shapes | None = None,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """Parse `onnx_path` into a strongly typed network, build it, write the plan to `engine_path`
    (atomically), through Polygraphy's TensorRT loaders.

    plugin_library: registered with IPluginRegistry.load_library before parsing (the ONNX parser maps
    the qcompile plugin nodes to its creators). serialize_plugins: embed it in a version-compatible
    plan (runtimes then need setEngineHostCodeAllowed(true)). timing_cache: read if present,
    written back after the build. shapes: an optimization profile for dynamic inputs.
    """
    onnx_path, engine_path = Path(onnx_path), Path(engine_path)
    if not onnx_path.is_file():
        raise ModelError(f"{onnx_path} does not exist")
    if not engine_path.parent.is_dir():
        raise OutputError(f"folder {engine_path.parent} does not exist")
    if serialize_plugins and plugin_library is None:
        raise QCompileError("serialize_plugins needs a plugin_library to embed")
    library = find_plugin_library(plugin_library) if plugin_library is not None else None
    profile_shapes = check_shapes(shapes)
    trt = import_tensorrt()
    poly = _polygraphy_trt()
    if library is not None:
        load_plugin_library(trt, library)
    network = poly.NetworkFromOnnxPath(str(onnx_path), strongly_typed=network_flags(trt) != 0)
    create_config = poly.CreateConfig(
        tf32=True,  # TensorRT's own default (Polygraphy's is off)
        profiles=_profiles(poly, profile_shapes),
        load_timing_cache=str(timing_cache) if timing_cache is not None else None,
        memory_pool_limits=(
            {trt.MemoryPoolType.WORKSPACE: int(workspace_mb) << 20} if workspace_mb is not None else None
        ),
        version_compatible=serialize_plugins or None,
        progress_monitor=_make_progress_monitor(trt, progress) if progress is not None else None,
    )

    def make_config(builder, network):
        _check_profile_inputs(network, profile_shapes)
        config = create_config(builder, network)
        if serialize_plugins:
            config.plugins_to_serialize = [str(library)]
        return config

    build = poly.EngineBytesFromNetwork(
        network, make_config, save_timing_cache=str(timing_cache) if timing_cache is not None else None
    )
    from polygraphy.exception import PolygraphyException

    try:
        plan = build()
    except PolygraphyException as exc:
        raise QCompileError(f"TensorRT could not build an engine from {onnx_path}: {exc}") from None
    from qcompile.outputs import Staging

    with Staging() as staging:
        staging.temp_for(engine_path).write_bytes(memoryview(plan))
        staging.commit()
    log.info("wrote %s (%d bytes)", engine_path, engine_path.stat().st_size)
    return engine_path


def _polygraphy_trt():
    try:
        from polygraphy.backend import trt as poly
    except ImportError as exc:
        raise MissingDependencyError(POLYGRAPHY_MISSING) from exc
    return poly


def network_flags(trt) -> int:
    """Strongly typed: the STRONGLY_TYPED flag on TensorRT 10; 0 from 11 on, where every network is
    strongly typed and the flag is deprecated (its bindings mark it so)."""
    major = int(str(getattr(trt, "__version__", "10")).split(".")[0])
    return 0 if major >= 11 else 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)


def load_plugin_library(trt, library: Path) -> None:
    """Register the library's creators (its getCreators entry point) with TensorRT's registry.

    Polygraphy's LoadPlugins only dlopens a library, which registers nothing for a library that,
    like this one, exports getCreators instead of registering itself statically.
    """
    from qcompile.plugin_specs import load_specs

    specs = load_specs()
    registry = trt.get_plugin_registry()
    if all(registry.get_creator(name, spec.version, specs.namespace) for name, spec in specs.plugins.items()):
        return  # already registered in this process; loadLibrary would fail on the duplicates
    if registry.load_library(str(library)) is None:
        raise QCompileError(f"TensorRT could not load the plugin library {library}")


def _profiles(poly, shapes: Shapes) -> list | None:
    if not shapes:
        return None
    poly_profile = poly.Profile()
    for name, (lo, opt, hi) in shapes.items():
        poly_profile.add(name, min=lo, opt=opt, max=hi)
    return [poly_profile]


def _check_profile_inputs(network, shapes: Shapes) -> None:
    """Every dynamic input has shapes (Polygraphy would fill in a guess), and no shape names a
    missing input."""
    inputs = [network.get_input(i) for i in range(network.num_inputs)]
    dynamic = [t.name for t in inputs if any(d < 0 for d in t.shape)]
    unknown = sorted(set(shapes) - {t.name for t in inputs})
    if unknown:
        raise QCompileError(
            f"shapes given for unknown input(s) {unknown}; inputs: {[t.name for t in inputs]}"
        )
    missing = [name for name in dynamic if name not in shapes]
    if missing:
        raise QCompileError(f"input(s) {missing} have dynamic dims: give their (min, opt, max) shapes")


def _make_progress_monitor(trt, progress: Callable[[str], None]):
    """A trt.IProgressMonitor that reports phases and steps as lines; None before TensorRT 10.0."""
    if not hasattr(trt, "IProgressMonitor"):
        return None

    class Monitor(trt.IProgressMonitor):
        def __init__(self):
            trt.IProgressMonitor.__init__(self)
            self.steps = {}

        def phase_start(self, phase_name, parent_phase, num_steps):
            self.steps[phase_name] = num_steps
            progress(
                f"{parent_phase + ' > ' if parent_phase else ''}{phase_name}: started ({num_steps} steps)"
            )

        def step_complete(self, phase_name, step):
            progress(f"{phase_name}: step {step + 1}/{self.steps.get(phase_name, '?')}")
            return True  # False would cancel the build

        def phase_finish(self, phase_name):
            progress(f"{phase_name}: done")

    return Monitor()
