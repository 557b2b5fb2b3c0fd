"""Without data, a tokenizer.json beside the model tokenizes qcompile's own text for calibration."""

from __future__ import annotations

import collections
import json
import re

import kv_models
import numpy as np
import onnx
import onnx_ir as ir
import pytest
from click.testing import CliRunner

import tiny_models
from qcompile import text_calibration
from qcompile.cli import main
from qcompile.kv_cache import find_kv_layout
from qcompile.ort_runner import OrtModel
from qcompile.synthetic_calibration import SMALL_MODEL_SAMPLED_CACHED, SMALL_MODEL_SEQUENCES, generate

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]


def write_tokenizer(path, vocab: int, post_processor: bool = True) -> None:
    """A word-level tokenizer over the bundled text's most common words, `vocab` ids in all."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    words = re.findall(r"\w+|[^\w\s]", text_calibration.TEXT.read_text(encoding="utf-8"))
    common = [w for w, _ in collections.Counter(words).most_common(vocab - len(SPECIAL))]
    ids = {w: i for i, w in enumerate(SPECIAL + common)}
    tokenizer = Tokenizer(models.WordLevel(ids, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    if post_processor:
        tokenizer.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
        )
    tokenizer.save(str(path))


@pytest.fixture()
def encoder(tmp_path):
    onnx.save(tiny_models.token_encoder(vocab=100), tmp_path / "encoder.onnx")
    write_tokenizer(tmp_path / "tokenizer.json", 100)
    return tmp_path / "encoder.onnx"


def test_an_encoder_calibrates_on_sentences_of_the_text(encoder):
    model = ir.load(encoder)
    text, why = text_calibration.find(encoder.parent, 100)
    assert why is None and text.pad_id == 0
    session = OrtModel.from_ir(model)
    samples, how = generate(model, session.run, fits=("hessian",), text=text)
    session.close()
    assert len(samples) == SMALL_MODEL_SEQUENCES
    assert how.startswith(f"{SMALL_MODEL_SEQUENCES} sequences of 64 tokens of qcompile's calibration text")
    ids = np.concatenate([s["input_ids"] for s in samples])
    masks = np.concatenate([s["attention_mask"] for s in samples]).astype(bool)
    lengths = masks.sum(axis=1)
    np.testing.assert_array_equal(masks, np.arange(64) < lengths[:, None])  # padded after the length
    assert lengths.min() >= 4 and lengths.max() > 48 and 12 <= np.median(lengths) <= 20
    rows = np.arange(len(ids))
    assert (ids[:, 0] == 2).all() and (ids[rows, lengths - 1] == 3).all()  # [CLS] ... [SEP]
    assert (ids[~masks] == 0).all() and (ids[masks] != 1).mean() > 0.5  # [PAD] after; mostly known words
    # row i starts at line i of the text: its tokens as the tokenizer makes them, cut before the [SEP]
    from tokenizers import Tokenizer

    line = text.lines[7]
    expected = Tokenizer.from_file(str(encoder.with_name("tokenizer.json"))).encode(line).ids[:-1]
    cut = min(len(expected), lengths[7] - 1)
    np.testing.assert_array_equal(ids[7, :cut], expected[:cut])


def test_a_decoder_calibrates_on_windows_of_the_text(tmp_path):
    onnx.save(kv_models.decoder(), tmp_path / "decoder.onnx")
    write_tokenizer(tmp_path / "tokenizer.json", kv_models.VOCAB, post_processor=False)
    model = ir.load(tmp_path / "decoder.onnx")
    text, _ = text_calibration.find(tmp_path, kv_models.VOCAB)
    session = OrtModel.from_ir(model)
    samples, how = generate(model, session.run, find_kv_layout(model), fits=("hessian",), length=6, text=text)
    session.close()
    assert len(samples) == SMALL_MODEL_SAMPLED_CACHED and "calibration text (windows), tokenized" in how
    stream = text.stream
    windows = np.concatenate([s["input_ids"] for s in samples])
    starts = np.linspace(0, len(stream) - 6, len(samples)).round().astype(int)
    np.testing.assert_array_equal(windows, np.stack([stream[s : s + 6] for s in starts]))
    assert all(s["past_key_values.0.key"].shape[2] == 0 for s in samples)  # completed as prefill samples


def test_without_data_the_command_line_uses_the_text_and_says_so(encoder, tmp_path):
    from qcompile.synthetic_calibration import generated_kind

    assert generated_kind(ir.load(encoder), encoder.parent) == "text"
    assert generated_kind(ir.load(encoder)) == "random"  # no folder (an in-memory model): no tokenizer
    (tmp_path / "out").mkdir()
    out = tmp_path / "out" / "q.onnx"
    result = CliRunner().invoke(main, [str(encoder), "-p", "w4a8", "-o", str(out), "-q"])
    assert result.exit_code == 0, result.output
    recipe = json.loads(out.with_suffix(".recipe.json").read_text())
    assert recipe["algorithm"] == "gptq" and recipe["offsets"] is True
    notes = json.loads(out.with_suffix(".report.json").read_text())["notes"]
    assert any(
        "qcompile's calibration text (lines packed to log-uniform lengths of 4 to 64, padded), "
        "tokenized by the tokenizer.json beside the model" in n
        for n in notes
    ), notes


def _corrupt(folder):
    (folder / "tokenizer.json").write_text('{"model": {"type": "WordLevel", "vocab": ')


def _too_large(folder):
    write_tokenizer(folder / "tokenizer.json", 200)


def _outside(folder):
    outside = folder.parent / f"{folder.name}-elsewhere"
    outside.mkdir()
    write_tokenizer(outside / "tokenizer.json", 100)
    (folder / "tokenizer.json").symlink_to(outside / "tokenizer.json")


def _directory(folder):
    (folder / "tokenizer.json").mkdir()


@pytest.mark.parametrize(
    "make, why",
    [
        (_corrupt, "it does not load"),
        (_directory, "it is not a regular file"),
        (_too_large, "it makes token ids up to 199, the model's table has 100 rows"),
        (_outside, "it points outside the model's folder"),
    ],
)
def test_an_unusable_tokenizer_is_passed_over_with_its_reason(tmp_path, make, why):
    folder = tmp_path / "model"
    folder.mkdir()
    onnx.save(tiny_models.token_encoder(vocab=100), folder / "encoder.onnx")
    make(folder)
    text, reason = text_calibration.find(folder, 100)
    assert text is None and reason.startswith("tokenizer.json beside the model not used: " + why)
    out = tmp_path / "q.onnx"
    result = CliRunner().invoke(main, [str(folder / "encoder.onnx"), "-p", "w8a8", "-o", str(out), "-q"])
    assert result.exit_code == 0, result.output
    notes = json.loads(out.with_suffix(".report.json").read_text())["notes"]
    assert any(why in n for n in notes) and any("random tokens" in n for n in notes), notes


def test_the_text_shares_no_phrase_with_the_bench_texts():
    """The bench compares qcompile's text against real calibration text and scores on held-out texts:
    the text must not quote any of them (no run of five words in common)."""
    from pathlib import Path

    from bench.models import minilm

    def phrases(text: str) -> set[tuple[str, ...]]:
        words = re.findall(r"\w+", text.lower())
        return {tuple(words[i : i + 5]) for i in range(len(words) - 4)}

    texts = Path(__file__).resolve().parents[2] / "bench" / "texts"
    bench = [p.read_text(encoding="utf-8") for p in sorted(texts.glob("*.txt"))]
    bench += minilm.SENTENCES_CALIB + minilm.SENTENCES_EVAL
    assert len(bench) > 100
    ours = phrases(text_calibration.TEXT.read_text(encoding="utf-8"))
    assert not ours & set().union(*map(phrases, bench))
