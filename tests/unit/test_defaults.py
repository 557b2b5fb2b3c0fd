"""The measured per-preset defaults: applied by the command line only when no algorithm is named."""

from __future__ import annotations

import json

import numpy as np
from click.testing import CliRunner

import tiny_models
from qcompile.cli import main
from qcompile.defaults import measured_default


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
    assert measured_default({"precision": "w4a8"}, None)[0]["algorithm"] == "hqq"
    assert measured_default({"precision": "w4a16"}, None)[0]["algorithm"] == "hqq"
    assert measured_default({"precision": "w4a16"}, "random")[0]["algorithm"] == "hqq"
    assert measured_default({"precision": "w6a16"}, "c.npz")[0]["algorithm"] == "gptq"
    assert measured_default({"precision": "w6a16"}, None)[1] is None  # rtn, the FP6 layout chosen per layer
    assert measured_default({"precision": "fp8"}, "c.npz")[1] is None


def test_without_data_text_sampled_from_the_model_gets_smoothquant():
    fields, note = measured_default({"precision": "w8a8"}, None, samples_from_model=True)
    assert fields["algorithm"] == "smoothquant" and "sampled from the model" in note
    assert measured_default({"precision": "w8a8"}, None)[1] is None  # random tokens: rtn
    assert measured_default({"precision": "w8a8"}, "random", samples_from_model=True)[1] is None
    assert measured_default({"precision": "w4a16"}, None, samples_from_model=True)[0]["algorithm"] == "hqq"


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
