"""KV-cache exports (Optimum layout) with and without calibration data, on a one-layer decoder
built in kv_models.py; and data-free calibration (self-generated token sequences)."""

from __future__ import annotations

import json

import kv_models
import numpy as np
import onnx
import onnx_ir as ir
import pytest
from click.testing import CliRunner

import qcompile
import tiny_models
from qcompile.cli import main
from qcompile.errors import CalibrationError
from qcompile.kv_cache import complete, find_kv_layout
from qcompile.recipe import Recipe


@pytest.fixture(scope="module")
def decoder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("kv")
    onnx.save(kv_models.decoder(), folder / "decoder.onnx")
    return folder / "decoder.onnx"


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("encoder")
    onnx.save(tiny_models.token_encoder(), folder / "encoder.onnx")
    return folder / "encoder.onnx"


def test_layout_is_found_from_the_dimensions(decoder):
    layout = find_kv_layout(ir.load(decoder))
    assert layout.input_ids == "input_ids" and layout.attention_mask == "attention_mask"
    assert layout.position_ids == "position_ids"
    assert layout.pasts == (
        ("past_key_values.0.key", "present.0.key"),
        ("past_key_values.0.value", "present.0.value"),
    )
    assert layout.past_dims == ((2, 32), (2, 32))
    renamed = kv_models.decoder()
    for v in list(renamed.graph.input) + list(renamed.graph.output):
        if v.name == "attention_mask":
            v.name = "mask_in"  # names are only a hint: the mask is the ids-shaped input of another length
    for node in renamed.graph.node:
        node.input[:] = ["mask_in" if i == "attention_mask" else i for i in node.input]
    assert find_kv_layout(ir.from_proto(renamed)).attention_mask == "mask_in"


def test_complete_fills_a_consistent_sample(decoder):
    layout = find_kv_layout(ir.load(decoder))
    ids = np.array([[3, 4, 5]], np.int64)
    sample, filled = complete(layout, {"input_ids": ids})
    assert sample["past_key_values.0.key"].shape == (1, 2, 0, 32)
    assert sample["attention_mask"].tolist() == [[1, 1, 1]] and sample["position_ids"].tolist() == [[0, 1, 2]]
    past = np.zeros((1, 2, 4, 32), np.float32)
    sample, _ = complete(
        layout, {"input_ids": ids, "past_key_values.0.key": past, "past_key_values.0.value": past}
    )
    assert sample["attention_mask"].shape == (1, 7) and sample["position_ids"].tolist() == [[4, 5, 6]]
    assert set(filled) == set(layout.derived)


def test_weight_only_without_data_verifies_on_consistent_samples(decoder, tmp_path):
    report = qcompile.compile(
        decoder, Recipe("w4a16", group_size=32), None, output=tmp_path / "q.onnx"
    ).report
    logits = [a for a in report.accuracy if a.name == "logits"][0]
    assert logits.cosine_mean > 0.98, logits
    assert any("KV-cache model: 2 past/present pairs" in n for n in report.notes)


def test_w4a8_without_data_generates_its_own(decoder, tmp_path):
    report = qcompile.compile(decoder, Recipe("w4a8", group_size=32), None, output=tmp_path / "q.onnx").report
    assert any(
        "qcompile generated its own" in n and "sampled from the model's own" in n for n in report.notes
    )
    assert [a for a in report.accuracy if a.name == "logits"][0].cosine_mean > 0.95
    assert "generated" in report.eval_source


def test_a_file_of_input_ids_is_completed(decoder, tmp_path):
    ids = np.random.default_rng(0).integers(0, kv_models.VOCAB, (8, 1, 12)).astype(np.int64)
    np.savez(tmp_path / "ids.npz", input_ids=ids)
    report = qcompile.compile(
        decoder, Recipe("w8a8"), tmp_path / "ids.npz", output=tmp_path / "q.onnx"
    ).report
    assert any(
        "calibration file completed by qcompile: attention_mask, past_key_values.0.key" in n
        for n in report.notes
    )
    assert [a for a in report.accuracy if a.name == "logits"][0].cosine_mean > 0.95


def test_inconsistent_data_is_a_one_line_error(decoder, tmp_path):
    rng = np.random.default_rng(0)
    bad = {
        "input_ids": rng.integers(0, 50, (2, 1, 8)),
        "attention_mask": np.ones((2, 1, 16), np.int64),
        "position_ids": np.tile(np.arange(8, 16), (2, 1, 1)),
        "past_key_values.0.key": rng.standard_normal((2, 1, 2, 4, 32)).astype(np.float32),
        "past_key_values.0.value": rng.standard_normal((2, 1, 2, 4, 32)).astype(np.float32),
    }
    with pytest.raises(
        CalibrationError, match=r"attention_mask.*expected \[1, 12\] \(past 4 \+ sequence 8\)"
    ):
        qcompile.compile(decoder, Recipe("w8a8"), bad)
    np.savez(tmp_path / "bad.npz", **bad)
    result = CliRunner().invoke(
        main,
        [
            str(decoder),
            "-p",
            "w8a8",
            "--calib",
            str(tmp_path / "bad.npz"),
            "-o",
            str(tmp_path / "bad.q.onnx"),
            "-q",
        ],
    )
    assert (
        result.exit_code == 2 and "past 4 + sequence 8" in result.output and "Traceback" not in result.output
    )


def test_only_a_model_with_logits_over_its_table_samples_its_own_text(decoder, mlp, encoder):
    from qcompile.synthetic_calibration import generated_kind

    assert generated_kind(ir.load(decoder)) == "sampled"
    assert generated_kind(ir.load(encoder)) == "random"
    assert generated_kind(ir.load(mlp)) is None  # a float input: nothing to generate


def test_w8a8_without_data_on_a_decoder_runs_smoothquant(decoder, tmp_path):
    out = tmp_path / "q.onnx"
    result = CliRunner().invoke(main, [str(decoder), "-p", "w8a8", "-o", str(out), "-q", "--no-verify"])
    assert result.exit_code == 0, result.output
    recipe = json.loads((tmp_path / "q.recipe.json").read_text())
    assert recipe["algorithm"] == "smoothquant" and recipe["algorithm_options"] == {"alpha": None}


def test_w4a16_without_data_on_a_small_decoder_runs_gptq_on_sampled_text(decoder, tmp_path):
    out = tmp_path / "q.onnx"
    result = CliRunner().invoke(main, [str(decoder), "-p", "w4a16", "-o", str(out), "-q", "--no-verify"])
    assert result.exit_code == 0, result.output
    recipe = json.loads((tmp_path / "q.recipe.json").read_text())
    assert recipe["algorithm"] == "gptq" and recipe["offsets"] is True
    report = json.loads((tmp_path / "q.report.json").read_text())
    assert any("qcompile generated its own" in note for note in report["notes"]), report["notes"]


def test_random_calibration_keeps_its_meaning(decoder, tmp_path):
    report = qcompile.compile(decoder, Recipe("w8a8"), "random", output=tmp_path / "q.onnx").report
    assert report.eval_source.startswith("random inputs (--calib random)")


def test_generated_text_is_longer_on_small_models_and_reports_progress(decoder, monkeypatch):
    from qcompile import synthetic_calibration as sc
    from qcompile.ort_runner import OrtModel

    model = ir.load(decoder)
    layout = find_kv_layout(model)
    session = OrtModel.from_ir(model)
    seen = []
    samples, how = sc.generate(model, session.run, layout, length=6, progress=lambda *a: seen.append(a))
    sampled = sc.SMALL_MODEL_SAMPLED_CACHED  # through the KV cache; without one, fewer:
    assert (
        sc._counts(True, True, ("hessian",)) == (sc.SMALL_MODEL_SAMPLED, 0)
        and sc.SMALL_MODEL_SAMPLED < sampled
    )
    assert len(samples) == sampled and how == (
        f"{sampled} generated sequences of 6 tokens: {sampled} sampled from the model's own "
        "next-token distribution (LLM-QAT)"
    )
    assert [done for _, done, _ in seen] == list(range(1, len(seen) + 1))  # one call per sampled token
    assert seen[-1][2] == len(seen) == -(-sampled // sc.BATCH) * 5
    assert all(s["past_key_values.0.key"].shape[2] == 0 for s in samples)  # prefill samples, pasts empty
    assert len(sc.generate(model, session.run, layout, fits=("hessian",), length=6)[0]) == sampled
    topped, how = sc.generate(model, session.run, layout, fits=("x_absmax", "x_sample"), length=6)
    assert len(topped) == sc.SMALL_MODEL_SEQUENCES  # SmoothQuant: topped up with random tokens
    assert f"then {sc.SMALL_MODEL_SEQUENCES - sampled} of random tokens (Zipf over the token ids)" in how
    assert topped[0]["input_ids"].tobytes() == samples[0]["input_ids"].tobytes()  # same seed: text first
    monkeypatch.setattr(sc, "SMALL_MODEL_WEIGHTS", sc.gemm_weights(model) - 1)
    big, how = sc.generate(model, session.run, layout, fits=("x_absmax",), length=6)
    assert len(big) == sc.SEQUENCES and "random" not in how  # larger models: sampled text only
    session.close()


def test_an_encoder_gets_many_random_token_sequences_for_fitting_algorithms(encoder, monkeypatch):
    from qcompile import synthetic_calibration as sc
    from qcompile.ort_runner import OrtModel

    model = ir.load(encoder)
    session = OrtModel.from_ir(model)
    samples, how = sc.generate(model, session.run, fits=("hessian",))
    assert (
        len(samples) == sc.SMALL_MODEL_SEQUENCES
        and "random tokens (Zipf over the token ids; padded after" in how
    )
    first = samples[0]
    assert first["input_ids"].shape == (1, sc.LENGTH) and first["input_ids"].max() < 100
    assert (first["token_type_ids"] == 0).all()
    # padded: the mask is ones then zeros, the length log-uniform from 4 to 64 (median 16; 512 rows: 14-18)
    masks = np.concatenate([s["attention_mask"] for s in samples])
    lengths = masks.sum(axis=1)
    np.testing.assert_array_equal(masks, np.arange(sc.LENGTH) < lengths[:, None])
    assert lengths.min() >= sc.MIN_LENGTH and lengths.max() > 48 and 12 <= np.median(lengths) <= 20
    assert len({s["input_ids"].tobytes() for s in samples}) == len(samples)
    assert len(sc.generate(model, session.run)[0]) == sc.SEQUENCES  # ranges only (RTN): a few
    smoothed, how = sc.generate(model, session.run, fits=("x_absmax", "x_sample"))
    assert len(smoothed) == sc.SMALL_MODEL_SEQUENCES and "(Zipf over the token ids;" in how
    # A Zipf law over the ids, p(id) ~ 1 / (id + offset): at offset 100 on this 100-row table P(id < 10) is
    # 0.138, at offset 1 0.565, uniform 0.10 (32768 draws: std 0.003 at most)
    assert abs(_share(samples, range(10)) - _zipf_share(range(10), np.ones(100), 100)) < 0.01
    monkeypatch.setattr(sc, "ZIPF_OFFSET", 1)
    steep = sc.generate(model, session.run, fits=("hessian",))[0]
    assert abs(_share(steep, range(10)) - _zipf_share(range(10), np.ones(100), 1)) < 0.01
    monkeypatch.setattr(sc, "SMALL_MODEL_WEIGHTS", sc.gemm_weights(model) - 1)
    assert len(sc.generate(model, session.run, fits=("hessian",))[0]) == sc.SEQUENCES
    session.close()


def _share(samples: list[dict], ids) -> float:
    return float(np.isin(np.concatenate([s["input_ids"].ravel() for s in samples]), list(ids)).mean())


def _zipf_share(ids, weight: np.ndarray, offset: int) -> float:
    """P(id in ids) by the law p ~ weight / (the weights of the rows before it + offset)."""
    p = weight / (np.cumsum(weight) - weight + offset)
    return float(p[list(ids)].sum() / p.sum())


def test_random_tokens_weigh_rows_by_how_far_training_moved_them(tmp_path):
    """Rows whose norm is under half the median row's (BERT's [unused] tokens keep their initial norm) are
    never drawn; between half the median and the median a row's weight rises linearly, and the Zipf ranks
    count the weights."""
    from qcompile import synthetic_calibration as sc
    from qcompile.ort_runner import OrtModel

    proto = tiny_models.token_encoder()
    embed = next(t for t in proto.graph.initializer if t.name == "embed")
    table = onnx.numpy_helper.to_array(embed)
    norm = np.concatenate([np.full(20, 0.05), np.full(10, 0.75), np.ones(70)])  # the median row: 1
    table = table / np.linalg.norm(table, axis=1, keepdims=True) * norm[:, None].astype(np.float32)
    embed.CopyFrom(onnx.numpy_helper.from_array(table, "embed"))
    model = ir.from_proto(proto)
    session = OrtModel.from_ir(model)
    samples, how = sc.generate(model, session.run, fits=("hessian",))
    session.close()
    assert (
        "(Zipf over the token ids weighted by how far training moved each row, 20 untrained rows left out; "
        "padded after" in how
    )
    weight = np.concatenate([np.zeros(20), np.full(10, 0.5), np.ones(70)])  # (0.75 - 0.5) / (1 - 0.5)
    assert _share(samples, range(20)) == 0
    # P(20 <= id < 30) = 0.087 by the law (unweighted 0.162, uniform over the rows kept 0.125); 32768 draws:
    # std 0.002
    assert abs(_share(samples, range(20, 30)) - _zipf_share(range(20, 30), weight, sc.ZIPF_OFFSET)) < 0.01
    assert abs(_share(samples, range(30, 40)) - _zipf_share(range(30, 40), weight, sc.ZIPF_OFFSET)) < 0.01


@pytest.mark.parametrize("preset, algorithm", [("w4a16", "gptq"), ("w8a8", "smoothquant"), ("w6a16", "gptq")])
def test_an_encoder_without_data_gets_the_defaults_fitted_to_random_tokens(
    encoder, tmp_path, preset, algorithm
):
    out = tmp_path / "q.onnx"
    result = CliRunner().invoke(main, [str(encoder), "-p", preset, "-o", str(out), "-q"])
    assert result.exit_code == 0, result.output
    recipe = json.loads((tmp_path / "q.recipe.json").read_text())
    assert recipe["algorithm"] == algorithm and bool(recipe.get("offsets")) == (preset == "w4a16")
    report = json.loads((tmp_path / "q.report.json").read_text())
    assert any("random tokens (Zipf over the token ids;" in note for note in report["notes"]), report["notes"]
