"""The measured per-preset defaults: applied by the command line only when no algorithm is named."""

from __future__ import annotations

import json

import numpy as np
from click.testing import CliRunner

import tiny_models
from qcompile.cli import main
from qcompile.defaults import measured_default
from qcompile.synthetic_calibration import SMALL_MODEL_WEIGHTS


def test_measured_default_only_fills_an_unnamed_algorithm():
    fields, note = measured_default({"precision": "w8a8"}, "c.npz")
    assert fields["algorithm"] == "smoothquant" and fields["algorithm_options"] == {"alpha": None}
    assert "w8a8 default with calibration data" in note
    assert measured_default({"precision": "w8a8", "algorithm": "rtn"}, "c.npz") == (
        {"precision": "w8a8", "algorithm": "rtn"},
        None,
    )
    assert measured_default({"precision": "w8a8"}, "random")[1] is None  # random inputs are no data
    fields = measured_default({"precision": "w4a16"}, "c.npz")[0]
    assert fields["algorithm"] == "gptq" and fields["algorithm_options"] == {"act_order": True}
    assert measured_default({"precision": "w4a8"}, "c.npz")[0]["algorithm"] == "gptq"
    assert fields["offsets"] is True and measured_default({"precision": "w4a8"}, "c.npz")[0]["offsets"]
    assert "offsets" not in measured_default({"precision": "w4a16"}, None)[0]  # hqq: offsets by itself
    assert measured_default({"precision": "w4a8"}, None)[0]["algorithm"] == "hqq"
    assert measured_default({"precision": "w4a16"}, None)[0]["algorithm"] == "hqq"
    assert measured_default({"precision": "w4a16"}, "random")[0]["algorithm"] == "hqq"
    assert measured_default({"precision": "w6a16"}, "c.npz")[0]["algorithm"] == "gptq"
    assert measured_default({"precision": "w6a16"}, None)[1] is None  # rtn, the FP6 layout chosen per layer
    assert measured_default({"precision": "fp8"}, "c.npz")[1] is None


def test_gptq_offsets_only_where_the_recipe_leaves_the_weight_form_open():
    fields, note = measured_default({"precision": "w4a16"}, "c.npz")
    assert fields["offsets"] and "--offsets" in note
    for own in ({"asymmetric": True}, {"offsets": False}, {"overrides": [("re:head", "fp8")]}):
        fields = measured_default({"precision": "w4a16", **own}, "c.npz")[0]
        assert fields["algorithm"] == "gptq" and fields.get("offsets") == own.get("offsets")
    assert "offsets" not in measured_default({"precision": "w4a8", "int4_plugin": True}, "c.npz")[0]
    assert measured_default({"precision": "w4a16", "int4_plugin": True}, "c.npz")[0]["offsets"]


def test_without_data_generated_samples_get_smoothquant():
    fields, note = measured_default({"precision": "w8a8"}, None, "sampled")
    assert fields["algorithm"] == "smoothquant" and "sampled from the model" in note
    fields, note = measured_default({"precision": "w8a8"}, None, "random", 10**7)
    assert fields["algorithm"] == "smoothquant" and "on random tokens" in note
    assert measured_default({"precision": "w8a8"}, None)[1] is None  # nothing generated: rtn
    assert measured_default({"precision": "w8a8"}, "random", "sampled")[1] is None


def test_without_data_small_models_get_gptq_with_offsets_on_generated_samples():
    for generated in ("text", "sampled", "random"):
        fields, note = measured_default({"precision": "w4a16"}, None, generated, 10**8)
        assert fields["algorithm"] == "gptq" and fields["offsets"] and "on " in note
        assert measured_default({"precision": "w4a8"}, None, generated, 10**8)[0]["algorithm"] == "gptq"
    big = SMALL_MODEL_WEIGHTS + 1  # generating that much and GPTQ cost too much there: hqq
    assert measured_default({"precision": "w4a16"}, None, "sampled", big)[0]["algorithm"] == "hqq"
    assert measured_default({"precision": "w4a16"}, None, "random", big)[0]["algorithm"] == "hqq"
    assert measured_default({"precision": "w8a8"}, None, "sampled", big)[0]["algorithm"] == "smoothquant"
    assert measured_default({"precision": "w8a8"}, None, "random", big)[1] is None  # 8 random sequences: rtn
    assert measured_default({"precision": "w4a16"}, None, "text", big)[0]["algorithm"] == "hqq"
    fields, note = measured_default({"precision": "w8a8"}, None, "text", big)
    assert fields["algorithm"] == "smoothquant" and "on qcompile's calibration text" in note
    assert measured_default({"precision": "w4a16"}, None, None, 10**8)[0]["algorithm"] == "hqq"


def test_without_data_w6a16_runs_gptq_where_nothing_is_sampled():
    for generated in ("random", "text"):
        fields = measured_default({"precision": "w6a16"}, None, generated, 10**7)[0]
        assert fields["algorithm"] == "gptq" and "offsets" not in fields  # an offset moves FP6's middle
    assert measured_default({"precision": "w6a16"}, None, "sampled", 10**7)[1] is None  # time budget: rtn
    assert measured_default({"precision": "w6a16"}, None, "random", SMALL_MODEL_WEIGHTS + 1)[1] is None


def test_cli_records_the_default_it_used(mlp, tmp_path):
    np.savez(tmp_path / "c.npz", **tiny_models.calibration())
    runner = CliRunner()
    for extra, algorithm in (([], "smoothquant"), (["--algorithm", "rtn"], "rtn")):
        out = tmp_path / f"{algorithm}.onnx"
        result = runner.invoke(
            main,
            [
                str(mlp),
                "-p",
                "w8a8",
                "--calib",
                str(tmp_path / "c.npz"),
                "-o",
                str(out),
                "-q",
                "--no-verify",
                *extra,
            ],
        )
        assert result.exit_code == 0, result.output
        recipe = json.loads((tmp_path / f"{algorithm}.recipe.json").read_text())
        assert recipe["algorithm"] == algorithm


def test_cli_w4a16_default_with_data_runs_gptq_with_offsets(mlp, tmp_path):
    np.savez(tmp_path / "c.npz", **tiny_models.calibration())
    out = tmp_path / "w4.onnx"
    args = [str(mlp), "-p", "w4a16", "--calib", str(tmp_path / "c.npz"), "-o", str(out), "-q", "--no-verify"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    recipe = json.loads((tmp_path / "w4.recipe.json").read_text())
    assert recipe["algorithm"] == "gptq" and recipe["offsets"] is True
