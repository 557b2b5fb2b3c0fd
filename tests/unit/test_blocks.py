"""Blocks found from the residual stream, block-by-block execution, calibration and verification.

Tolerances: running the blocks one after another computes the same ops on the same inputs as
the whole model, so outputs agree to float32 round-off (1e-5 relative; onnxruntime may fuse
differently at a block boundary). Calibration statistics, hence scales, agree to the same.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnx_ir as ir
import pytest

from bench.models.llama1b import LlamaShape, build_llama_onnx, make_calibration
from qcompile import layer_quantizer, planning
from qcompile.block_calibration import quantize_blockwise
from qcompile.blockwise import BlockModel, Carry, run_block
from qcompile.ort_runner import OrtModel
from qcompile.passes.find_blocks import find_blocks
from qcompile.recipe import Recipe
from tiny_models import mlp

SHAPE = LlamaShape(layers=3, hidden=64, intermediate=128, heads=4, kv_heads=2, vocab=50, max_positions=32)
ROUNDOFF = 1e-5


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    path, _ = build_llama_onnx(tmp_path_factory.mktemp("llama"), SHAPE)
    ids = make_calibration(SHAPE.vocab, samples=6, seq=12)["input_ids"]
    return path, [{"input_ids": ids[i]} for i in range(len(ids))]


def _weights(block) -> list[str]:
    return [
        n.inputs[1].name for n in block.nodes if n.op_type == "MatMul" and n.inputs[1].const_value is not None
    ]


def test_llama_blocks_are_its_layers_then_the_head(llama):
    found = find_blocks(ir.load(llama[0]).graph)
    assert found.reason == ""
    assert len(found.blocks) == SHAPE.layers + 1
    assert found.cuts == tuple(f"/model/layers.{i}/Add_mlp_residual_output_0" for i in range(SHAPE.layers))
    for i, block in enumerate(found.blocks[:-1]):
        assert _weights(block) == [
            f"model.layers.{i}.{w}.weight"
            for w in (
                "self_attn.q_proj",
                "self_attn.k_proj",
                "self_attn.v_proj",
                "self_attn.o_proj",
                "mlp.gate_proj",
                "mlp.up_proj",
                "mlp.down_proj",
            )
        ]
        assert found.cuts[i] in block.outputs
    assert _weights(found.blocks[-1]) == ["lm_head.weight"]
    assert found.blocks[-1].outputs == ("logits",)
    # the residual value, RoPE tables and mask are all a middle block reads
    assert set(found.blocks[1].inputs) == {found.cuts[0], *found.blocks[0].outputs[:3]}


def test_graph_without_residual_stream_is_one_block():
    found = find_blocks(ir.serde.deserialize_model(mlp()).graph)
    assert len(found.blocks) == 1 and found.cuts == ()
    assert "no residual stream" in found.reason
    assert found.blocks[0].inputs == ("x",) and found.blocks[0].outputs == ("y",)


@pytest.mark.parametrize("budget", [1 << 30, 0])  # 0: every carried value spilled to disk
def test_blocks_run_in_turn_give_the_whole_model_outputs(llama, tmp_path, budget):
    path, samples = llama
    model = BlockModel(path)
    carry = Carry(samples, tmp_path, budget)
    for block in model.blocks.blocks:
        with model.session(block, carry.dtypes(block)) as session:
            carry.advance(run_block(session, block, carry.feeds(block)), model.keep_after(block.index))
    assert all(set(values) == {"logits"} for values in carry.values)
    with OrtModel(path) as whole:
        for sample, values in zip(samples, carry.values):
            want = whole.run(sample)[0]
            atol = ROUNDOFF * np.abs(want).max()
            np.testing.assert_allclose(values["logits"], want, rtol=ROUNDOFF, atol=atol)


def _quantize(path, samples, recipe, tmp_path, *, cuts=None, sequential=False):
    model = ir.load(path)
    planned, _ = planning.plan(model, recipe)
    groups = layer_quantizer.make_groups(planned, recipe)
    blocks = BlockModel(path, cuts=cuts)
    folder = tmp_path / f"work{cuts is None}{sequential}"
    folder.mkdir()
    done = quantize_blockwise(blocks, groups, samples, recipe, folder=folder, sequential=sequential)
    return {
        p.layer.name: (qg.act_scale, r.qw.scales, r.qw.codes)
        for qg in done
        for p, r in zip(qg.group.planned, qg.results)
    }


def test_blockwise_calibration_gives_the_whole_model_scales(llama, tmp_path):
    path, samples = llama
    recipe = Recipe.preset("w8a8", algorithm="gptq")
    blockwise = _quantize(path, samples, recipe, tmp_path)
    whole = _quantize(path, samples, recipe, tmp_path, cuts=())
    assert blockwise.keys() == whole.keys() and len(whole) == 7 * SHAPE.layers + 1
    for name, (act, scales, codes) in whole.items():
        np.testing.assert_allclose(blockwise[name][0], act, rtol=ROUNDOFF, err_msg=name)
        np.testing.assert_allclose(blockwise[name][1], scales, rtol=ROUNDOFF, err_msg=name)
        # GPTQ's codes follow the Hessian: round-off may flip a code at a rounding tie, rarely
        assert np.mean(blockwise[name][2] == codes) > 0.999, name


def test_sequential_mode_calibrates_later_blocks_on_quantized_outputs(llama, tmp_path):
    path, samples = llama
    recipe = Recipe.preset("w4a8")
    plain = _quantize(path, samples, recipe, tmp_path)
    sequential = _quantize(path, samples, recipe, tmp_path, sequential=True)
    first = [n for n in plain if "layers.0/" in n]
    later = [n for n in plain if "layers.2/" in n]
    for name in first:  # block 0 sees the same inputs in both modes
        np.testing.assert_allclose(sequential[name][0], plain[name][0], rtol=ROUNDOFF)
    changed = [abs(sequential[n][0] / plain[n][0] - 1) for n in later]
    assert max(changed) > 1e-4, changed


def test_compile_reports_each_blocks_error(llama, tmp_path, monkeypatch):
    from qcompile import compile

    path, samples = llama
    monkeypatch.chdir(tmp_path)
    calib = {"input_ids": np.stack([s["input_ids"] for s in samples])}
    artifacts = compile(str(path), "w8a8", calib, output=tmp_path / "q.onnx")
    report = artifacts.report
    assert [b.block for b in report.blocks] == list(range(SHAPE.layers + 1))
    assert report.blocks[-1].value == "logits"
    assert all(0.9 < b.cosine_mean <= 1 + 1e-9 and 0 < b.relative_mse < 0.1 for b in report.blocks)
    assert report.accuracy[0].cosine_mean == pytest.approx(report.blocks[-1].cosine_mean, rel=1e-9)
    assert any("4 blocks found from the residual stream" in n for n in report.notes)
    assert any(n.startswith("TensorRT pre-flight") for n in report.notes)
    assert onnx.load(str(tmp_path / "q.onnx"), load_external_data=False).graph.node


def test_spilled_values_share_one_file(tmp_path):
    rng = np.random.default_rng(0)
    samples = [
        {
            "a": rng.standard_normal((1, 3, 5)).astype(np.float32),
            "b": np.arange(i + 1),
            "e": np.zeros((1, 2, 0)),
        }
        for i in range(3000)  # more than a process may hold open files in many setups
    ]
    carry = Carry(samples, tmp_path, budget=0)
    carry.advance([{"c": s["a"] * 2} for s in samples], {"a", "b", "c", "e"})
    assert [p.suffix for p in tmp_path.iterdir()] == [".bin"]
    for sample, values in zip(samples, carry.values):
        assert all(isinstance(v, np.memmap) == (v.size > 0) for v in values.values())  # empty: kept
        assert values["a"].dtype == np.float32 and values["b"].dtype == sample["b"].dtype
        np.testing.assert_array_equal(values["a"], sample["a"])
        np.testing.assert_array_equal(values["b"], sample["b"])
        np.testing.assert_array_equal(values["c"], sample["a"] * 2)
        assert values["e"].shape == (1, 2, 0)
