"""Each sensitivity method runs on a toy residual network and ranks an obviously sensitive layer
above a benign one where it should; residual blocks are found generically."""

from __future__ import annotations

import numpy as np
import pytest

from test_mixed_models import calibration, residual_mlp

from qcompile.mixed.auto import AutoOptions, analyze
from qcompile.mixed.candidates import weight_errors
from qcompile.mixed.sensitivity import METHODS, SensitivityOptions
from qcompile.errors import RecipeError

AMPLIFIED = {1: 3.0}  # block 1's branch is 10x stronger than the others (0.3): it changes its input most
OUTLIER = ("up2.w", 40.0)  # one huge weight in up2: a coarse scale for its channel


@pytest.fixture(scope="module")
def analysis():
    options = AutoOptions(method="measured", report_methods=tuple(METHODS),
                          sensitivity=SensitivityOptions(samples=2, zd_direction="lower"))
    return analyze(residual_mlp(3, gains=AMPLIFIED, outlier=OUTLIER), calibration(), options)


def _importance(analysis, method, layer, fmt="int4"):
    """A method's predicted error divided by the format's relative weight MSE (its layer importance)."""
    rel = weight_errors(analysis.infos, 128)[layer][fmt][1]
    return analysis.sensitivities[method].error[layer][fmt] / rel


def test_every_method_scores_every_layer_and_format(analysis):
    names = {i.name for i in analysis.infos}
    assert names == {"up0", "down0", "up1", "down1", "up2", "down2", "head"}
    for method, sens in analysis.sensitivities.items():
        assert set(sens.score) == names, method
        for info in analysis.infos:
            errs = sens.error[info.name]
            assert set(errs) == set(info.bits)
            assert errs["fp16"] == 0.0
            assert all(np.isfinite(v) and v >= 0 for v in errs.values()), (method, errs)


def test_lim_finds_the_residual_blocks_and_ranks_the_amplified_one_first(analysis):
    lim = analysis.sensitivities["lim"]
    blocks = lim.details["blocks"]
    assert [sorted(b["layers"]) for b in blocks] == [["down0", "up0"], ["down1", "up1"], ["down2", "up2"]]
    assert lim.details["outside_blocks"] == ["head"]
    assert lim.score["up1"] > lim.score["up0"] and lim.score["up1"] > lim.score["up2"], lim.score
    assert lim.score["head"] == max(lim.score.values())


def test_lim_falls_back_to_cka_without_residual_structure():
    from tiny_models import calibration as mlp_calibration, mlp

    analysis = analyze(mlp(), mlp_calibration(), AutoOptions(method="lim", report_methods=()))
    assert analysis.sensitivities["lim"].details == {"fallback": "per-layer linear CKA"}
    assert all(-1.0 - 1e-9 <= s <= 0.0 + 1e-9 for s in analysis.sensitivities["lim"].score.values())


def test_zd_direction_lower_ranks_the_outlier_layer_first(analysis):
    zd = analysis.sensitivities["zd"]
    # a huge outlier inflates the std, so almost no weight of up2 has z > 1
    assert zd.score["up2"] < 0.01 < zd.score["up0"], zd.score
    assert _importance(analysis, "zd", "up2") > 10 * _importance(analysis, "zd", "up0")


def test_zd_direction_higher_is_the_reverse():
    options = AutoOptions(method="zd", report_methods=(), sensitivity=SensitivityOptions(zd_direction="higher"))
    analysis = analyze(residual_mlp(3, outlier=OUTLIER), calibration(), options)
    assert _importance(analysis, "zd", "up2") < _importance(analysis, "zd", "up0")


def test_hessian_ranks_the_outlier_layer_and_the_amplified_input_above_benign_ones(analysis):
    h = analysis.sensitivities["hessian"]
    assert h.error["up2"]["int4"] > 5 * h.error["up0"]["int4"], h.error  # outlier: large weight MSE
    assert h.score["up2"] > 2 * h.score["up1"], h.score  # block 1 amplified the hidden state up2 reads
    for info in analysis.infos:
        assert h.error[info.name]["int4"] > h.error[info.name]["int8"] > 0


def test_measured_ranks_the_amplified_block_first(analysis):
    m = analysis.sensitivities["measured"]
    assert m.details["groups"] == 7 and m.details["runs"] == 7 * 5 * 2
    for name in ("up1", "down1"):
        assert m.error[name]["int4"] > 3 * m.error["up0"]["int4"], m.error
    assert m.error["up1"]["int4"] > m.error["up1"]["int8"]


def test_measured_groups_layers_over_the_run_cap():
    options = AutoOptions(method="measured", report_methods=(),
                          sensitivity=SensitivityOptions(samples=1, measured_max_runs=15))
    analysis = analyze(residual_mlp(3), calibration(), options)
    m = analysis.sensitivities["measured"]
    assert m.details["groups"] == 3 and m.details["runs"] == 15
    assert any("groups of consecutive layers" in n for n in analysis.notes)


def test_unknown_method_names_the_known_ones():
    with pytest.raises(RecipeError, match="known: lim, zd, hessian, measured"):
        AutoOptions(method="fisher")
