"""Streaming weights: RTN by row chunks, codes spilled to disk, the model saved tensor by tensor.

Tolerances: zero. Row chunks of a per-channel or per-group RTN hold the same rows and groups,
and spilled codes are the same bytes; the streamed file must run to the same outputs bit for bit.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnx_ir as ir
import pytest

from qcompile import compile, layer_quantizer
from qcompile.algorithms import LayerCalibration
from qcompile.algorithms.options import RtnOptions
from qcompile.ort_runner import OrtModel
from qcompile.recipe import Recipe
from qcompile.stream_save import save_streaming
from tiny_models import calibration, mlp


@pytest.mark.parametrize("precision", ["w4a16", "w8a8"])
def test_rtn_by_row_chunks_is_rtn(precision, monkeypatch):
    spec = Recipe.preset(precision).choice_for("any").weights
    w = np.random.default_rng(0).standard_normal((96, 256)).astype(np.float32)
    whole = layer_quantizer._apply(w, spec, LayerCalibration(), "rtn", RtnOptions())
    monkeypatch.setattr(layer_quantizer, "ROW_CHUNK", 256 * 7)  # 7 rows a chunk: the last one shorter
    chunked = layer_quantizer._apply(w, spec, LayerCalibration(), "rtn", RtnOptions())
    assert np.array_equal(chunked.qw.codes, whole.qw.codes)
    assert np.array_equal(chunked.qw.scales, whole.qw.scales)


def test_streamed_save_runs_like_the_model_in_memory(tmp_path):
    model = ir.serde.deserialize_model(mlp())
    x = calibration(samples=1)["x"][0]
    with OrtModel.from_ir(model) as session:
        want = session.run({"x": x})[0]
    files = save_streaming(model, tmp_path / "m.onnx")
    assert files == [tmp_path / "m.onnx", tmp_path / "m.onnx.data"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "m.onnx.data"]  # no temporaries left
    proto = onnx.load(str(tmp_path / "m.onnx"), load_external_data=False)
    external = {t.name for t in proto.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL}
    assert external == {"w1", "b1", "w2"}  # 1 KB and more out; the shape constant inline
    with OrtModel(tmp_path / "m.onnx") as session:
        assert np.array_equal(session.run({"x": x})[0], want)
    # the model in memory now reads its weights from the written file
    moved = [v for v in model.graph.initializers.values() if isinstance(v.const_value, ir.ExternalTensor)]
    assert {v.name for v in moved} == external
    assert all(Path(v.const_value.base_dir) == tmp_path for v in moved)
    assert np.array_equal(
        model.graph.initializers["w1"].const_value.numpy(),
        onnx.numpy_helper.to_array(next(t for t in mlp().graph.initializer if t.name == "w1")),
    )


def test_failed_save_leaves_nothing(tmp_path, monkeypatch):
    import qcompile.stream_save as stream_save

    def broken(*args, **kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr(stream_save.onnx.checker, "check_model", broken)
    with pytest.raises(OSError):
        save_streaming(ir.serde.deserialize_model(mlp()), tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


def test_large_model_path_spills_codes_and_streams(tmp_path, monkeypatch):
    """compile() with the large-model thresholds lowered gives the same model as without."""
    import qcompile.pipeline as pipeline

    onnx.save(mlp(), tmp_path / "m.onnx")
    small = compile(tmp_path / "m.onnx", "w4a16", output=tmp_path / "small.onnx", verify=False)
    monkeypatch.setattr(pipeline, "STREAM_BYTES", 0)
    monkeypatch.setattr(layer_quantizer, "SPILL_MIN_BYTES", 0)
    large = compile(tmp_path / "m.onnx", "w4a16", output=tmp_path / "large.onnx", verify=False)
    assert (tmp_path / "large.onnx.data").exists() and not (tmp_path / "small.onnx.data").exists()
    x = calibration(samples=1)["x"][0]
    with OrtModel(tmp_path / "small.onnx") as a, OrtModel(tmp_path / "large.onnx") as b:
        assert np.array_equal(a.run({"x": x})[0], b.run({"x": x})[0])
    assert [r.weight_sqnr_db for r in small.report.layers] == [r.weight_sqnr_db for r in large.report.layers]


@pytest.mark.parametrize("dtype", ["int4", "uint4", "float4_e2m1fn"])
@pytest.mark.parametrize(
    "shape, transposed", [((6, 8), False), ((8, 6), True), ((5, 7), False), ((300, 4), True)]
)
def test_4bit_pieces_are_onnx_packing(dtype, shape, transposed):
    """The block-wise packing writes the bytes onnx-ir's own packing does (odd rows fall back to it)."""
    import ml_dtypes
    import onnx_ir as ir

    from qcompile.stream_save import _pieces

    rng = np.random.default_rng(0)
    array = rng.integers(0, 16, shape, dtype=np.uint8).view(getattr(ml_dtypes, dtype))
    array = array.T if transposed else array
    tensor = ir.tensor(array)
    assert b"".join(_pieces(tensor, piece_bytes=16)) == tensor.tobytes()


def test_4bit_pieces_of_sign_extended_int4():
    import ml_dtypes
    import onnx_ir as ir

    from qcompile.stream_save import _pieces

    codes = np.random.default_rng(1).integers(-8, 8, (64, 10)).astype(ml_dtypes.int4)  # bytes 0xF8..0x07
    tensor = ir.tensor(codes.T)
    assert b"".join(_pieces(tensor, piece_bytes=64)) == tensor.tobytes()
