"""Calibration rows cut from qcompile's own text (calibration_text.txt: everyday English prose,
dialogue, instructions, figures, a little code and a few sentences of French, German and Spanish),
tokenized by the `tokenizer.json` beside the model, as Hugging Face exports ship it. Real language
without the user's data: on both bench models it calibrates about as well as their real calibration
text, which random tokens do not (BENCHMARKS.md, "Defaults, eighth round").

The tokenizer file is untrusted input: it is read only when it lies inside the model's folder, and
a file that does not load or whose ids overrun the model's token table is passed over with the
reason, never an error.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

TEXT = Path(__file__).with_name("calibration_text.txt")
TOKENIZER_FILE = "tokenizer.json"
PAD_TOKENS = ("[PAD]", "<pad>", "<|pad|>", "<|endoftext|>")


class TextTokens:
    """The bundled text, tokenized: its lines (rows for a model that runs padded batches) and the whole
    text as one stream (fixed-length windows)."""

    def __init__(self, tokenizer):
        padding = tokenizer.padding
        found = [tokenizer.token_to_id(t) for t in PAD_TOKENS]
        self.pad_id = padding["pad_id"] if padding else next((i for i in found if i is not None), 0)
        tokenizer.no_padding()
        tokenizer.no_truncation()
        self._tokenizer = tokenizer
        self.lines = [line for line in TEXT.read_text(encoding="utf-8").splitlines() if line.strip()]
        self.stream = np.asarray(tokenizer.encode("\n".join(self.lines)).ids, np.int64)

    def largest_id(self) -> int:
        return int(max(self.stream.max(), self.pad_id))

    def windows(self, count: int, length: int) -> np.ndarray:
        """`count` windows of `length` tokens [count, length], starting at evenly spaced tokens of the
        stream (overlapping once the text is used up; repeating it when shorter than a window)."""
        stream = np.resize(self.stream, max(len(self.stream), length))
        starts = np.linspace(0, len(stream) - length, count).round().astype(np.int64)
        return np.stack([stream[s : s + length] for s in starts])

    def sentences(self, lengths: np.ndarray, length: int) -> np.ndarray:
        """A row per entry of `lengths` [rows, length]: consecutive lines from the next one on (cycling),
        tokenized with the tokenizer's special tokens and cut to that many tokens, then padded."""
        rows = np.full((len(lengths), length), self.pad_id, np.int64)
        for row, wanted in enumerate(lengths):
            first = row % len(self.lines)
            text, ids = "", []
            self._tokenizer.enable_truncation(int(wanted))
            for line in self.lines[first:] + self.lines[:first]:
                text = f"{text} {line}" if text else line
                ids = self._tokenizer.encode(text).ids[:wanted]  # a template may outgrow a tiny max
                if len(ids) >= wanted:
                    break
            rows[row, : len(ids)] = ids
        self._tokenizer.no_truncation()
        return rows


class _Unused(Exception):
    """Why a tokenizer.json beside the model is not used."""


def find(folder: Path | None, vocab: int | None) -> tuple[TextTokens | None, str | None]:
    """The bundled text tokenized by `folder`/tokenizer.json, or None and why it is not used (None too
    where there is no such file)."""
    if folder is None or not (Path(folder) / TOKENIZER_FILE).exists():
        return None, None
    try:
        return _load(Path(folder) / TOKENIZER_FILE, Path(folder), vocab), None
    except _Unused as exc:
        return None, f"{TOKENIZER_FILE} beside the model not used: {exc}"


def _load(path: Path, folder: Path, vocab: int | None) -> TextTokens:
    from tokenizers import Tokenizer

    target = path.resolve()
    if folder.resolve() not in target.parents:
        raise _Unused("it points outside the model's folder")
    if not target.is_file():
        raise _Unused("it is not a regular file")
    try:
        text = TextTokens(Tokenizer.from_file(str(target)))
    except Exception as exc:  # noqa: BLE001 - an untrusted file: any failure to load means "not used"
        raise _Unused(f"it does not load ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})")
    if not len(text.stream):
        raise _Unused("it makes no tokens of qcompile's text")
    if vocab is not None and text.largest_id() >= vocab:
        raise _Unused(f"it makes token ids up to {text.largest_id()}, the model's table has {vocab} rows")
    return text
