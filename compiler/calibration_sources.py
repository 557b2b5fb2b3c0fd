"""Where compile()'s samples come from: the user's file, `--calib random`, or qcompile's own
generation when a preset needs activation ranges and no data is given; KV-cache models get every
sample completed consistently (kv_cache.py); `fits`, what the algorithm fits to the samples, sets
how many are generated. Returns the samples, a sentence for the report's evaluation source, and
notes for the report."""

from __future__ import annotations

import logging

import onnx_ir as ir

from qcompile import calibration as calib
from qcompile import kv_cache

logger = logging.getLogger(__name__)


def _runner(model: ir.Model):
    from qcompile.ort_runner import OrtModel

    return OrtModel.from_ir(model)


def prepare_samples(
    calibration,
    model: ir.Model,
    specs: list,
    needs_data: bool,
    progress=None,
    fits: tuple[str, ...] = (),
    folder=None,
) -> tuple[list, str, list[str]]:
    """`folder`: where the model's file lies (a tokenizer.json there tokenizes qcompile's own text)."""
    layout = kv_cache.find_kv_layout(model)
    notes: list[str] = []
    if layout:
        notes.append(
            f"KV-cache model: {len(layout.pasts)} past/present pairs; samples made consistent "
            "(mask of past + sequence, positions from the past length, prefill and decode samples)"
        )
    random = isinstance(calibration, str) and calibration == calib.RANDOM
    if calibration is None and needs_data:
        from qcompile import text_calibration
        from qcompile.synthetic_calibration import generate, token_table_rows

        text, unused = text_calibration.find(folder, token_table_rows(model))
        if unused:
            logger.warning("%s", unused)
            notes.append(unused)
        session = _runner(model) if text is None or layout else None  # text needs no run of the model
        run = session.run if session else None
        samples, how = generate(model, run, layout, fits=fits, progress=progress, text=text)
        if layout:
            samples = kv_cache.with_decode_samples(layout, samples, run)
        if session:
            session.close()
        notes.append(f"no calibration data given: qcompile generated its own ({how})")
        return samples, f"held-back generated samples ({how})", notes
    if calibration is None or random:
        kept = [s for s in specs if not layout or s.name not in layout.derived]
        from qcompile.synthetic_calibration import in_range

        samples = in_range(model, calib.load_calibration(calib.RANDOM, kept))
        if random:
            logger.warning("calibrating on random inputs: activation scales will not match real data")
        source = (
            "random inputs (--calib random)"
            if random
            else "random inputs (no calibration data given: accuracy on real data may differ)"
        )
        return _completed(layout, samples, model, notes, generated=True), source, notes
    samples = calib.load_calibration(calibration, specs, optional=layout.derived if layout else ())
    return _completed(layout, samples, model, notes), "held-back calibration samples", notes


def _completed(layout, samples: list, model: ir.Model, notes: list[str], generated: bool = False) -> list:
    if not layout:
        return samples
    out, filled = [], set()
    for sample in samples:
        full, names = kv_cache.complete(layout, sample)
        out.append(full)
        filled |= set(names)
    if filled and not generated:
        notes.append(f"calibration file completed by qcompile: {', '.join(sorted(filled))}")
    if filled:  # decode samples only where qcompile made the pasts itself
        session = _runner(model)
        out = kv_cache.with_decode_samples(layout, out, session.run)
        session.close()
    return out
