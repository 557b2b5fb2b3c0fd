"""Calibration data qcompile makes itself when none is given (LLM-QAT's data-free generation).

Token-id inputs: qcompile's own text where a tokenizer.json for the model lies beside it
(text_calibration); else sequences sampled from the model itself (a random first token, then each
next token drawn from the model's own output distribution, batch by batch), on small models topped up
with random tokens for algorithms fitted to activation statistics; when the model has no output over
the vocabulary (an encoder), random tokens only: drawn by a Zipf law over the ids of the token table's
rows, weighted by how far training moved each row, and padded after a random length when the model
has an attention mask. Other integer inputs: a mask is ones (but for that padding), token-type /
segment ids are zeros, an index into a constant table is uniform over its rows. Float inputs have no
range qcompile can know: refused unless `--calib random`.
"""

from __future__ import annotations

import logging

import numpy as np
import onnx_ir as ir

from qcompile.errors import CalibrationError

logger = logging.getLogger(__name__)
SEQUENCES = 8
LENGTH = 64
BATCH = 4
# On models of up to SMALL_MODEL_WEIGHTS GEMM weights, more samples for algorithms that fit to them
# (the measured defaults: defaults.WITHOUT_DATA_GENERATED): SMALL_MODEL_SAMPLED sequences of text
# sampled from the model (a forward pass per token: about 280 s for 64 on SmolLM2 on 2 cores, an export
# without a KV cache), topped up to SMALL_MODEL_SEQUENCES with random tokens (free to make) for
# algorithms fitted to activation statistics; an encoder's random tokens, SMALL_MODEL_SEQUENCES.
# Measured: SmolLM2 w8a8 SmoothQuant perplexity (real text 35.3) 8 sampled 43.2, 32 sampled 38.2,
# 512 random 37.6, 32 sampled + 480 random 36.2 (Zipf: 36.0), 64 sampled + 448 Zipf 35.7; w4a8 GPTQ
# (real text 39.9) 32 sampled 43.2, 64 sampled 41.6, 96 sampled 40.4; GPTQ gains nothing from the
# top-up (w4a16 42.0 against 42.2) and takes longer. MiniLM (an encoder) w8a8 SmoothQuant 0.9697 on
# 8 random sequences, 0.9931 on 512; RTN, fitting ranges only, is best on 8 (0.9868, 0.9831 on 512).
SMALL_MODEL_WEIGHTS = 500_000_000
SMALL_MODEL_SEQUENCES = 512
SMALL_MODEL_SAMPLED = 64
# A KV-cache export samples one token per step through its cache instead of re-running the prefix, and
# its decode samples come from the same text: it samples more. SmolLM2's KV export, w8a8 SmoothQuant,
# prefill / decode perplexity (fp32 22.40; an `input_ids` file of real text 24.65 / 24.74): 64 sampled
# 25.45 / 25.19, 128 sampled 24.16 / 24.46 (384 s to compile), 256 sampled 23.86 / 23.41.
SMALL_MODEL_SAMPLED_CACHED = 128
# Random tokens follow a Zipf law over the token ids, p ~ w / (rank + ZIPF_OFFSET), each row weighted by how
# far training moved it (row_weights; the rank counts the weights of the rows before it): tokenizers number
# their vocabularies roughly by frequency (BPE by merge order, WordPiece and SentencePiece by count), and a
# row text never reached (BERT's [unused] tokens, rare scripts) keeps about its initial norm, well under the
# trained rows' (MiniLM: 0.43-0.86 for [unused], median 1.12). Rows under UNTRAINED_NORM x the median row
# norm are left out (2102 of MiniLM's 30522); where there are such rows, the norms between them and the
# median measure how much training a row saw, and its weight rises linearly from 0 to 1 over that range
# (most of MiniLM's block of single characters, ordered by code point, not frequency, lies there: its 552
# rows kept took 32 % of the draws, where English text has 14 %; weighted, 19 %). A table with no untrained
# rows gives no such scale (SmolLM2's rarest tokens have its largest norms): every row weighs 1. What
# mattered on MiniLM was the tokens' frequencies, not their order: GPTQ w4a8 on 512 rows of tokens drawn
# independently from the unigram frequencies of English text 0.9813, on real sentences 0.9812, on uniform
# tokens 0.9740. Measured w4a8 (`eval`, 512 padded rows, seed 0 unless said): uniform
# 0.9740, Zipf over all ids offset 1000 / 100 / 10 0.9748 / 0.9751 / 0.9730, Zipf over the rows not left
# out (weights 0 or 1) offset 100 0.9748 (seeds 1-3: 0.9772, 0.9763, 0.9765; on another draw 0.9767, and
# offset 30 / 300 0.9762 / 0.9762); weighted, offset 100 0.9779 (seeds 1-3: 0.9776, 0.9769, 0.9769).
ZIPF_OFFSET = 100
UNTRAINED_NORM = 0.5
# A model with an attention mask runs padded batches, and the padded positions count in its per-tensor
# activation ranges: random-token rows for such a model are padded after a random length (_valid_lengths).
# Measured on MiniLM (512 sequences; real sentences of 9-14 tokens padded to 64; `eval` / `eval3`):
# w8a8 SmoothQuant on Zipf tokens unpadded 0.9947 / 0.9948, lengths log-uniform 4-64 0.9966 / 0.9970,
# uniform 4-64 0.9954 / 0.9963, 8-16 0.9961 / 0.9964 (real 0.9969 / 0.9952); w4a8 GPTQ on uniform tokens
# unpadded 0.9695 / 0.9686, log-uniform 4-64 0.9740 / 0.9751, uniform 4-64 0.9733 / 0.9739, 8-16
# 0.9747 / 0.9733 (real 0.9812 / 0.9766).
MIN_LENGTH = 4


def _consumers(value: ir.Value, ops=("Cast", "Reshape", "Unsqueeze", "Squeeze", "Flatten")) -> list[ir.Node]:
    """Nodes reading `value`, looking through shape-only and cast ops."""
    found = []
    for node, _ in value.uses():
        if node.op_type in ops:
            found += _consumers(node.outputs[0], ops)
        else:
            found.append(node)
    return found


def token_table(value: ir.Value) -> ir.Value | None:
    """The constant table a Gather indexes with `value` (the embedding of token ids)."""
    for node in _consumers(value):
        if (
            node.op_type == "Gather"
            and node.inputs[0] is not None
            and node.inputs[0].const_value is not None
            and node.attributes.get_int("axis", 0) == 0
        ):
            return node.inputs[0]
    return None


def table_rows(value: ir.Value) -> int | None:
    """Rows of the table `value` indexes (the vocabulary of token ids)."""
    table = token_table(value)
    return None if table is None else int(table.shape[0])


def _kind(value: ir.Value) -> str:
    name = value.name.lower()
    if value.dtype is not None and value.dtype.is_floating_point():
        return "float"
    if "mask" in name:
        return "mask"
    if "type" in name or "segment" in name:
        return "zeros"
    if "position" in name:
        return "positions"
    return "tokens" if table_rows(value) is not None else "unknown"


def _logits(model: ir.Model, vocab: int) -> str | None:
    for out in model.graph.outputs:
        dims = list(out.shape) if out.shape is not None else []
        if out.name == "logits" or (len(dims) == 3 and dims[-1] == vocab):
            return out.name
    return None


def gemm_weights(model: ir.Model) -> int:
    """Weights of the model's quantizable GEMMs (shapes only: external data stays unread)."""
    from qcompile.passes.canonicalize import find_layers

    return sum(layer.n * layer.k for layer in find_layers(model.graph)[0])


def _token_input(model: ir.Model, layout) -> tuple[ir.Value, list[ir.Value], dict[str, str]]:
    """The one token-id input generate() fills, the inputs it completes and their kinds; raises
    CalibrationError where it can generate nothing."""
    initializers = set(model.graph.initializers)
    inputs = [v for v in model.graph.inputs if v.name not in initializers]
    kinds = {v.name: _kind(v) for v in inputs}
    derived = set(layout.derived) if layout else set()
    for v in inputs:
        if v.name in derived:
            continue
        if kinds[v.name] == "float":
            raise CalibrationError(
                f"input {v.name!r} is a float tensor: qcompile cannot generate calibration data for it; give "
                "--calib FILE.npz, or --calib random to accept scales fitted to random inputs"
            )
        if kinds[v.name] == "unknown":
            raise CalibrationError(
                f"integer input {v.name!r} indexes no constant table, so its range is unknown: "
                "give --calib FILE.npz (or --calib random)"
            )
    tokens = [v for v in inputs if kinds[v.name] == "tokens" and v.name not in derived]
    if len(tokens) != 1:
        raise CalibrationError(
            f"cannot generate calibration data: expected one token-id input, found "
            f"{[v.name for v in tokens]}; give --calib FILE.npz"
        )
    return tokens[0], inputs, kinds


def generated_kind(model: ir.Model, folder=None) -> str | None:
    """What generate() makes for `model`, whose file lies in `folder`: qcompile's "text" where a
    tokenizer.json fit for the model lies beside it, else "sampled" text (a model with logits over its
    token table), "random" tokens (an encoder), or None where it refuses."""
    from qcompile import text_calibration

    vocab = token_table_rows(model)
    if vocab is None:
        return None
    if text_calibration.find(folder, vocab)[0] is not None:
        return "text"
    return "sampled" if _logits(model, vocab) else "random"


def token_table_rows(model: ir.Model) -> int | None:
    """Rows of the table the model's token-id input indexes; None where generate() refuses the model."""
    from qcompile import kv_cache

    try:
        return table_rows(_token_input(model, kv_cache.find_kv_layout(model))[0])
    except CalibrationError:
        return None


def _counts(samples_text: bool, small: bool, fits: tuple[str, ...], cached: bool = False) -> tuple[int, int]:
    """(sequences sampled from the model, sequences of random tokens) for an algorithm fitted to the
    calibration statistics `fits` (LayerCalibration fields; none: activation ranges only); `cached`: the
    model samples through a KV cache."""
    if not small:
        return (SEQUENCES, 0) if samples_text else (0, SEQUENCES)
    if not samples_text:
        return 0, SMALL_MODEL_SEQUENCES if fits else SEQUENCES
    sampled = SMALL_MODEL_SAMPLED_CACHED if cached else SMALL_MODEL_SAMPLED
    return sampled, SMALL_MODEL_SEQUENCES - sampled if _fits_activations(fits) else 0


def _fits_activations(fits: tuple[str, ...]) -> bool:
    """Whether the algorithm fits activation statistics (SmoothQuant, AWQ) rather than a Hessian (GPTQ) or
    ranges only (RTN)."""
    return bool(fits) and "hessian" not in fits


def row_weights(table: ir.Value, chunk: int = 4096) -> np.ndarray:
    """How much each row of a token table counts in the random-token law: 0 under UNTRAINED_NORM x the
    median row norm, rising linearly to 1 at the median where the table has such untrained rows; 1 for
    every row where it has none, or holds no floats."""
    data = table.const_value.numpy()
    if data.ndim != 2 or not (data.dtype.kind == "f" or data.dtype.name == "bfloat16"):
        return np.ones(len(data))
    norms = np.concatenate(
        [np.linalg.norm(data[i : i + chunk].astype(np.float32), axis=1) for i in range(0, len(data), chunk)]
    )
    ratio = norms / np.median(norms)
    if not (ratio < UNTRAINED_NORM).any():
        return np.ones(len(data))
    return np.clip((ratio - UNTRAINED_NORM) / (1 - UNTRAINED_NORM), 0.0, 1.0)


def _random_tokens(rng: np.random.Generator, weights: np.ndarray, shape: tuple) -> np.ndarray:
    """Token ids by the weighted Zipf law (ZIPF_OFFSET; row_weights)."""
    rank = np.cumsum(weights) - weights
    p = weights / (rank + ZIPF_OFFSET)
    return rng.choice(len(weights), size=shape, p=p / p.sum())


def generate(
    model: ir.Model,
    run,
    layout=None,
    *,
    fits: tuple[str, ...] = (),
    seed: int = 0,
    length: int = LENGTH,
    progress=None,
    text=None,
) -> tuple[list[dict], str]:
    """Samples (batch 1 each) for `model`'s inputs, sampled text first, and a sentence saying how
    they were made. `run(sample, names)` runs the original model; `layout` is its KV-cache layout, if
    any; `fits`: what the algorithm fits to them (_counts); `progress(stage, done, total)` counts
    sampled tokens; `text`: qcompile's text tokenized for the model (text_calibration.find), which
    replaces both sampled text and random tokens."""
    from qcompile import kv_cache

    ids, inputs, kinds = _token_input(model, layout)
    table = token_table(ids)
    vocab = int(table.shape[0])
    dims = list(ids.shape) if ids.shape is not None else [None, None]
    batch = dims[0] if isinstance(dims[0], int) else BATCH
    length = dims[1] if len(dims) > 1 and isinstance(dims[1], int) else length
    logits = _logits(model, vocab)
    rng = np.random.default_rng(seed)
    dtype = np.dtype(ids.dtype.numpy())

    def fill(sample: dict, valid: np.ndarray | None = None) -> dict:
        if layout:
            return kv_cache.complete(layout, sample)[0]
        seq = sample[ids.name]
        for v in inputs:
            if v.name == ids.name:
                continue
            vd = np.dtype(v.dtype.numpy())
            kind = kinds[v.name]
            sample[v.name] = (
                (np.arange(seq.shape[1]) < (seq.shape[1] if valid is None else valid[:, None])).astype(vd)
                if kind == "mask"
                else np.zeros(seq.shape, vd)
                if kind == "zeros"
                else np.broadcast_to(np.arange(seq.shape[1], dtype=vd), seq.shape).copy()
                if kind == "positions"
                else rng.integers(0, table_rows(v), seq.shape).astype(vd)
            )
        return sample

    small = gemm_weights(model) <= SMALL_MODEL_WEIGHTS
    sampled, randoms = _counts(logits is not None, small, fits, cached=layout is not None)
    padded = layout is None and "mask" in kinds.values()
    if text is not None:
        rows, valid, source = _text_rows(text, sampled + randoms, length, padded, dims, batch, rng)
        logger.info("no calibration data: %s", source)
        return [fill({ids.name: row.astype(dtype)}, v) for row, v in zip(rows, valid)], source
    steps = length - 1
    batches = -(-sampled // batch)
    out = []
    for index in range(batches):
        seq = rng.integers(0, vocab, (batch, 1)).astype(dtype)
        past = {}
        for step_index in range(steps):
            step = {ids.name: seq[:, -1:] if past else seq, **past} if layout else {ids.name: seq}
            names = [logits] + ([p for _, p in layout.pasts] if layout else [])
            result = run(fill(dict(step)), names)
            if layout:
                past = {p: v for (p, _), v in zip(layout.pasts, result[1:])}
            z = result[0][:, -1].astype(np.float64)
            prob = np.exp(z - z.max(axis=1, keepdims=True))
            prob /= prob.sum(axis=1, keepdims=True)
            nxt = [rng.choice(prob.shape[1], p=p) for p in prob]
            seq = np.concatenate([seq, np.array(nxt, dtype)[:, None]], axis=1)
            if progress:
                progress("sample calibration text", index * steps + step_index + 1, batches * steps)
        out += _rows(seq, dims, sampled - len(out))
    sampled_rows = len(out)
    if randoms:
        weights = row_weights(table)
        tokens = _random_tokens(rng, weights, (-(-randoms // batch) * batch, length)).astype(dtype)
        out += _split(tokens, dims, batch, randoms)
    valid = [None] * sampled_rows + [
        _valid_lengths(rng, len(row), length) if padded else None for row in out[sampled_rows:]
    ]
    parts = [f"{sampled} sampled from the model's own next-token distribution (LLM-QAT)"] if sampled else []
    if randoms:
        law = "Zipf over the token ids"
        left_out = int((weights == 0).sum())
        if left_out:
            law += f" weighted by how far training moved each row, {left_out} untrained rows left out"
        how = [law]
        if padded:
            how.append(f"padded after a log-uniform length of {min(MIN_LENGTH, length)} to {length}")
        if not sampled:
            how.append("the model has no output over its vocabulary")
        parts.append(f"{randoms} of random tokens ({'; '.join(how)})")
    source = f"{len(out)} generated sequences of {length} tokens: {', then '.join(parts)}"
    logger.info("no calibration data: %s", source)
    return [fill({ids.name: row}, v) for row, v in zip(out, valid)], source


def _text_rows(text, wanted: int, length: int, padded: bool, dims: list, batch: int, rng) -> tuple:
    """`wanted` samples of qcompile's text (text_calibration.TextTokens), their unpadded lengths (None
    each without padding) and a sentence saying what they are."""
    count = -(-wanted // batch) * batch
    lengths = _valid_lengths(rng, count, length) if padded else None
    tokens = text.sentences(lengths, length) if padded else text.windows(count, length)
    rows = _split(tokens, dims, batch, wanted)
    valid = _split(lengths, dims, batch, wanted) if padded else [None] * len(rows)
    how = f"lines packed to log-uniform lengths of {min(MIN_LENGTH, length)} to {length}, padded"
    source = (
        f"{len(rows)} sequences of {length} tokens of qcompile's calibration text "
        f"({how if padded else 'windows'}), tokenized by the tokenizer.json beside the model"
    )
    return rows, valid, source


def _valid_lengths(rng: np.random.Generator, rows: int, length: int) -> np.ndarray:
    """Unpadded lengths of random-token rows (the mask is zero after them), log-uniform from MIN_LENGTH to
    `length`: as many short sequences as long ones on a log scale."""
    low = min(MIN_LENGTH, length)
    return np.minimum(np.exp(rng.uniform(np.log(low), np.log(length + 1), rows)).astype(np.int64), length)


def _split(array: np.ndarray, dims: list, batch: int, wanted: int) -> list[np.ndarray]:
    """Generated rows [count, ...] as samples, batch by batch (_rows), at most `wanted` of them."""
    out = []
    for start in range(0, len(array), batch):
        out += _rows(array[start : start + batch], dims, wanted - len(out))
    return out


def _rows(seq: np.ndarray, dims: list, wanted: int) -> list[np.ndarray]:
    """A generated batch as samples: whole when the model fixes its batch, else rows of one, at most
    `wanted` of them."""
    if isinstance(dims[0], int):
        return [seq]
    return [seq[i : i + 1] for i in range(min(len(seq), wanted))]


def in_range(model: ir.Model, samples: list[dict], *, seed: int = 0) -> list[dict]:
    """Random samples with their integer inputs redrawn inside the ranges the model implies (token ids
    below the table size, masks of ones, type ids zero, positions counting up); other inputs untouched."""
    rng = np.random.default_rng(seed)
    values = {v.name: v for v in model.graph.inputs}
    out = []
    for sample in samples:
        sample = dict(sample)
        for name, array in sample.items():
            v = values.get(name)
            if v is None or v.dtype is None or not v.dtype.is_integer() or array.ndim == 0:
                continue
            kind = _kind(v)
            if kind == "tokens":
                sample[name] = rng.integers(0, table_rows(v), array.shape).astype(array.dtype)
            elif kind == "mask":
                sample[name] = np.ones_like(array)
            elif kind == "zeros":
                sample[name] = np.zeros_like(array)
            elif kind == "positions":
                sample[name] = np.broadcast_to(
                    np.arange(array.shape[-1], dtype=array.dtype), array.shape
                ).copy()
        out.append(sample)
    return out
