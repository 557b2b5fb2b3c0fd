"""LKD for one layer: distilling scales and rounding towards the float layer's outputs (needs PyTorch)."""

import sys

import numpy as np
import pytest

from qcompile.algorithms.layer import output_mse
from qcompile.algorithms.lkd import lkd
from qcompile.algorithms.synthetic import synthetic_layer
from qcompile.errors import MissingDependencyError
from qcompile.formats import get_format
from qcompile.quantizer import WeightSpec, quantize_weight

SPECS = {
    "int4_g128": WeightSpec(get_format("int4"), "group", 128),
    "fp4_e2m1_g32": WeightSpec(get_format("fp4_e2m1"), "group", 32),
    "uint4_asym_g64": WeightSpec(get_format("uint4"), "group", 64, symmetric=False),
}


@pytest.fixture(scope="module")
def layer():
    return synthetic_layer(32, 128, 256, seed=1)


@pytest.fixture
def torch_one_thread():
    torch = pytest.importorskip("torch", reason="LKD needs PyTorch")
    # These layers are tiny: on a shared 2-core machine torch's worker threads spin against each other and a
    # 0.05 s run takes 5 s. One thread for these tests only, restored afterwards.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("case", SPECS)
def test_lkd_lowers_held_out_error(layer, case, torch_one_thread):
    spec = SPECS[case]
    qw = quantize_weight(layer.w, spec)
    tuned, info = lkd(layer.w, qw, layer.x_calib, steps=60, lr=1e-2)
    before = output_mse(layer.x_test, layer.w, qw.dequantize())
    after = output_mse(layer.x_test, layer.w, tuned.dequantize())
    print(
        f"{case}: sample MSE {info.mse_before:.4e} -> {info.mse_after:.4e} (best step {info.best_step}); "
        f"held-out {before:.4e} -> {after:.4e} ({before / after:.2f}x)"
    )
    assert info.mse_after < info.mse_before
    assert after < before
    assert info.mse_after == pytest.approx(output_mse(layer.x_calib, layer.w, tuned.dequantize()), rel=1e-12)
    assert tuned.codes.dtype == qw.codes.dtype and tuned.scales.shape == qw.scales.shape


def test_lkd_never_returns_a_worse_weight(layer, torch_one_thread):
    qw = quantize_weight(layer.w, SPECS["int4_g128"])
    # A learning rate far too large makes every step worse; the given weight must come back unchanged.
    tuned, info = lkd(layer.w, qw, layer.x_calib, steps=5, lr=50.0)
    assert info.best_step == 0 and info.mse_after == info.mse_before
    np.testing.assert_array_equal(tuned.codes, qw.codes)
    np.testing.assert_array_equal(tuned.scales, qw.scales)


def test_lkd_keeps_constrained_scales(layer, torch_one_thread):
    qw = quantize_weight(
        layer.w, WeightSpec(get_format("fp4_e2m1"), "group", 32, scale_constraint="pow2_ratio")
    )
    tuned, info = lkd(layer.w, qw, layer.x_calib, steps=20)
    np.testing.assert_array_equal(tuned.scales, qw.scales)
    np.testing.assert_array_equal(tuned.group_exp, qw.group_exp)
    assert info.mse_after <= info.mse_before


def test_missing_torch_is_a_dependency_error(layer, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` raise ImportError
    qw = quantize_weight(layer.w, SPECS["int4_g128"])
    with pytest.raises(MissingDependencyError, match="--lkd needs PyTorch: pip install torch"):
        lkd(layer.w, qw, layer.x_calib, steps=1)
