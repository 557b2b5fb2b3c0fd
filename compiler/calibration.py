"""Calibration data: load and check it against the model's inputs, then observe activations."""

from __future__ import annotations

import dataclasses
import zlib
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from qcompile.errors import CalibrationError

RANDOM = "random"
MAX_SAMPLES = 4096  # more is slow for no gain; batch small samples together
_RESERVOIR = 65536


@dataclasses.dataclass(frozen=True)
class InputSpec:
    name: str
    dtype: np.dtype
    shape: tuple | None  # ints for static dims, None or str for dynamic ones; None: no shape given


Sample = dict[str, np.ndarray]


def _load_npz(path: Path, names: set[str] | None = None) -> dict[str, np.ndarray]:
    from qcompile.npz_reader import read_npz

    return read_npz(path, names)


def calibration_files(source) -> list[Path]:
    """The calibration files a path names (a .npz, or the .npz files of a folder)."""
    path = Path(source)
    return sorted(path.glob("*.npz")) if path.is_dir() else [path]


def load_calibration(
    source,
    inputs: list[InputSpec],
    *,
    seed: int = 0,
    random_samples: int = 16,
    optional: tuple[str, ...] = (),
) -> list[Sample]:
    """Samples from a .npz, a folder of .npz, a dict of arrays (leading sample axis), or "random".
    `optional`: inputs the data may leave out (the caller completes them: KV-cache models)."""
    if isinstance(source, str) and source == RANDOM:
        return _random_samples(inputs, random_samples, seed)
    names = {spec.name for spec in inputs}
    if isinstance(source, dict):
        arrays = [dict(source)]
    else:
        path = Path(source)
        if path.is_dir():
            files = calibration_files(path)
            if not files:
                raise CalibrationError(f"calibration folder {path} holds no .npz files")
            arrays = [_load_npz(f, names) for f in files]
        elif path.is_file():
            arrays = [_load_npz(path, names)]
        else:
            raise CalibrationError(f"calibration data not found: {path}")
    samples: list[Sample] = []
    for group in arrays:
        _check_arrays(group, inputs, optional)
        count = len(next(iter(group.values())))
        samples.extend({name: group[name][i] for name in group} for i in range(count))
    if not samples:
        raise CalibrationError("calibration data holds no samples")
    if len(samples) > MAX_SAMPLES:
        raise CalibrationError(
            f"calibration data holds {len(samples)} samples; qcompile takes at most {MAX_SAMPLES} "
            "(batch small samples together, or pass fewer)"
        )
    _check_values(arrays)
    return samples


def _check_values(groups: list[dict[str, np.ndarray]]) -> None:
    """Refuse NaN or infinity, and data that is the same number everywhere (nothing to fit a range on)."""
    constant = True
    for group in groups:
        for name, array in group.items():
            if array.size and np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
                raise CalibrationError(f"calibration input {name!r} holds NaN or infinity")
            if array.size and array.min() != array.max():
                constant = False
    values = {np.asarray(a).flat[0].item() for g in groups for a in g.values() if a.size}
    if constant and len(values) <= 1:
        raise CalibrationError(
            "calibration data is one constant value everywhere "
            f"({next(iter(values), 'empty')}): activation ranges cannot be fitted on it"
        )


def _check_arrays(arrays: dict[str, np.ndarray], inputs: list[InputSpec], optional=()) -> None:
    expected = {spec.name: spec for spec in inputs}
    missing = sorted(set(expected) - set(arrays) - set(optional))
    extra = sorted(set(arrays) - set(expected))
    if missing or extra:
        raise CalibrationError(
            f"calibration arrays {sorted(arrays)} do not match the model inputs {sorted(expected)}"
            + (f": missing {missing}" if missing else "")
            + (f", unexpected {extra}" if extra else "")
        )
    counts = {name: arr.shape[0] if arr.ndim else 0 for name, arr in arrays.items()}
    if len(set(counts.values())) != 1:
        raise CalibrationError(f"calibration arrays have different sample counts {counts}")
    for name, arr in arrays.items():
        spec = expected[name]
        want = (
            "[samples, "
            + ", ".join("?" if not isinstance(d, int) else str(d) for d in spec.shape or ["..."])
            + "]"
        )
        if arr.dtype != spec.dtype:
            raise CalibrationError(
                f"input {name!r}: calibration dtype {arr.dtype}, model expects {spec.dtype} with shape {want}"
            )
        if spec.shape is None:  # the model does not say
            continue
        per_sample = arr.shape[1:]
        if len(per_sample) != len(spec.shape) or any(
            isinstance(d, int) and d != s for d, s in zip(spec.shape, per_sample)
        ):
            raise CalibrationError(f"input {name!r}: calibration shape {list(arr.shape)}, expected {want}")


def _random_samples(inputs: list[InputSpec], count: int, seed: int) -> list[Sample]:
    rng = np.random.default_rng(seed)
    samples = []
    for _ in range(count):
        sample = {}
        for spec in inputs:
            dims = spec.shape if spec.shape is not None else (None, None)  # no shape in the model: a guess
            shape = tuple(d if isinstance(d, int) else (1 if i == 0 else 16) for i, d in enumerate(dims))
            if np.issubdtype(spec.dtype, np.floating):
                sample[spec.name] = rng.standard_normal(shape).astype(spec.dtype)
            elif spec.dtype == np.bool_:
                sample[spec.name] = np.ones(shape, np.bool_)
            else:
                sample[spec.name] = rng.integers(0, 100, shape).astype(spec.dtype)
        samples.append(sample)
    return samples


# The report verifies on at most this many held-back samples (verification keeps every sample's outputs: an
# LLM's logits, 64 tokens x 49k vocabulary = 12.6 MB each, twice), so no more are held back: the rest
# calibrate (512 generated samples: 480, where a quarter held back left 384).
HELD_BACK_AT_MOST = 32


def split_holdout(samples: list[Sample], fraction: float) -> tuple[list[Sample], list[Sample]]:
    """(calibration, held back for the report): `fraction` of the samples, at most HELD_BACK_AT_MOST; at
    least one of each when there are two or more."""
    if fraction <= 0 or len(samples) < 2:
        return samples, []
    held = min(len(samples) - 1, max(1, round(len(samples) * fraction)), HELD_BACK_AT_MOST)
    return samples[:-held], samples[-held:]


class TensorStats:
    """Streaming statistics of one activation tensor (channels on the last axis)."""

    def __init__(self, seed: int = 0):
        self.amax = 0.0
        self.channel_amax: np.ndarray | None = None
        self.channel_abssum: np.ndarray | None = None
        self.count = 0
        self._reservoir = np.empty(0, np.float32)
        self._rng = np.random.default_rng(seed)

    def add(self, x: np.ndarray) -> None:
        x = np.asarray(x, np.float32)
        flat = x.reshape(-1, x.shape[-1]) if x.ndim else x.reshape(1, 1)
        absval = np.abs(flat)
        finite = np.isfinite(absval)
        if not finite.all():
            absval = np.where(finite, absval, 0)
        self.amax = max(self.amax, float(absval.max(initial=0.0)))
        ch_max, ch_sum = absval.max(axis=0), absval.sum(axis=0, dtype=np.float64)
        self.channel_amax = ch_max if self.channel_amax is None else np.maximum(self.channel_amax, ch_max)
        self.channel_abssum = ch_sum if self.channel_abssum is None else self.channel_abssum + ch_sum
        self.count += flat.shape[0]
        values = absval.ravel()
        if values.size > _RESERVOIR // 4:
            values = self._rng.choice(values, _RESERVOIR // 4, replace=False)
        self._reservoir = np.concatenate([self._reservoir, values])
        if self._reservoir.size > _RESERVOIR:
            self._reservoir = self._rng.choice(self._reservoir, _RESERVOIR, replace=False)

    def percentile(self, q: float) -> float:
        if q >= 100.0 or self._reservoir.size == 0:
            return self.amax
        return float(np.percentile(self._reservoir, q))

    @property
    def channel_absmean(self) -> np.ndarray:
        return (self.channel_abssum / max(self.count, 1)).astype(np.float32)


def observe(
    run: Callable[[Sample, list[str]], list[np.ndarray]],
    tensors: list[str],
    samples: Iterable[Sample],
    *,
    chunk: int = 64,
    consumers: dict[str, Callable[[np.ndarray], None]] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, TensorStats]:
    """Run every sample and feed each observed tensor to its statistics (and optional consumers).

    At most `chunk` tensors are fetched per run, so memory stays bounded on large models.
    """
    samples = list(samples)
    # seeded by name: the same tensor gets the same reservoir whichever tensors are observed with it
    stats = {name: TensorStats(zlib.crc32(name.encode())) for name in tensors}
    chunks = [tensors[i : i + chunk] for i in range(0, len(tensors), chunk)] or [[]]
    total, done = len(chunks) * len(samples), 0
    for names in chunks:
        for sample in samples:
            for name, value in zip(names, run(sample, names)):
                stats[name].add(value)
                if consumers and name in consumers:
                    consumers[name](value)
            done += 1
            if progress:
                progress(done, total)
    return stats
