"""Recipe validation and calibration-data loading."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from qcompile.calibration import InputSpec, TensorStats, load_calibration, split_holdout
from qcompile.errors import CalibrationError, RecipeError
from qcompile.recipe import PRESETS, Recipe

X = InputSpec("x", np.dtype(np.float32), (None, 8))


def test_import_is_light():
    code = (
        "import sys, qcompile; print(sorted(m for m in ('onnx', 'onnxruntime', 'numpy', "
        "'onnx_ir', 'torch') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_builds(preset):
    choice = Recipe(preset).choice_for("any")
    assert choice.weights is not None


def test_recipe_errors_name_the_valid_choices():
    with pytest.raises(RecipeError, match="valid: w8a8"):
        Recipe("int3")
    with pytest.raises(RecipeError, match="group size must be 32, 64 or 128"):
        Recipe("w4a16", group_size=100)
    with pytest.raises(RecipeError, match="bad pattern"):
        Recipe("w4a16", exclude=("re:([",))
    with pytest.raises(RecipeError, match="unknown recipe keys"):
        Recipe.from_dict({"precision": "w4a16", "bits": 4})
    with pytest.raises(RecipeError, match="unknown calibration method"):
        Recipe("w8a8", calib_method="entropy")


def test_overrides_and_excludes(tmp_path):
    recipe = Recipe("w4a16", exclude=("re:.*head",), overrides={"re:blk1\\..*": "w8a16", "blk2.q": "fp16"})
    assert recipe.choice_for("lm_head").weights is None
    assert recipe.choice_for("blk1.q").weights.fmt.name == "int8"
    assert recipe.choice_for("blk2.q").weights is None
    assert recipe.choice_for("blk2.k").weights.fmt.name == "int4"
    path = tmp_path / "r.json"
    path.write_text(json.dumps(recipe.to_dict()))
    assert Recipe.from_file(path) == recipe


def test_calibration_folder_and_holdout(tmp_path):
    for i in range(3):
        np.savez(tmp_path / f"part{i}.npz", x=np.full((4, 2, 8), i, np.float32))
    samples = load_calibration(tmp_path, [X])
    assert len(samples) == 12 and samples[0]["x"].shape == (2, 8)
    calib, held = split_holdout(samples, 0.25)
    assert len(calib) == 9 and len(held) == 3
    calib, held = split_holdout(samples * 20, 0.25)  # a quarter would be 60: the rest calibrate
    assert len(calib) == 240 - 32 and len(held) == 32 and held == (samples * 20)[-32:]


def test_calibration_refuses_mismatch(tmp_path):
    with pytest.raises(CalibrationError, match="do not match the model inputs"):
        load_calibration({"y": np.zeros((2, 1, 8), np.float32)}, [X])
    with pytest.raises(CalibrationError, match="different sample counts"):
        load_calibration(
            {"x": np.zeros((2, 1, 8), np.float32), "m": np.zeros((3, 1), np.int64)},
            [X, InputSpec("m", np.dtype(np.int64), (None,))],
        )
    with pytest.raises(CalibrationError, match="not found"):
        load_calibration(tmp_path / "none.npz", [X])
    (tmp_path / "pickle.npz").write_bytes(b"not a zip at all")
    with pytest.raises(CalibrationError, match="not a .npz archive"):
        load_calibration(tmp_path / "pickle.npz", [X])


def test_object_arrays_are_never_unpickled(tmp_path):
    np.savez(tmp_path / "obj.npz", x=np.array([{"a": 1}], dtype=object))
    with pytest.raises(CalibrationError, match="Python objects"):
        load_calibration(tmp_path / "obj.npz", [X])


def test_tensor_stats_streaming():
    rng = np.random.default_rng(0)
    chunks = [rng.standard_normal((16, 8)).astype(np.float32) for _ in range(5)]
    stats = TensorStats()
    for c in chunks:
        stats.add(c)
    full = np.abs(np.concatenate(chunks))
    assert stats.amax == full.max()
    np.testing.assert_array_equal(stats.channel_amax, full.max(axis=0))
    np.testing.assert_allclose(stats.channel_absmean, full.mean(axis=0), rtol=1e-6)
    # all 640 values fit in the reservoir, so the percentile is exact
    assert stats.percentile(99.0) == pytest.approx(np.percentile(full, 99.0))
