"""Decoders exported with a KV cache (Hugging Face Optimum's layout): find the layout, and make
every calibration or verification sample consistent with it.

Optimum-style inputs are `input_ids [batch, seq]`, `attention_mask [batch, past + seq]`,
`position_ids [batch, seq]` and `past_key_values.N.key/value [batch, heads, past, head_dim]`;
outputs `logits` and `present.N.key/value [batch, heads, past + seq, head_dim]`. The layout is
found from the relations between dimensions: a past is a float input of rank 4 whose third
dimension is dynamic, paired with an output of the same rank, dtype and fixed dimensions (the
names `past...` -> `present...` decide the pairing when they match); the mask is the integer
input whose length is neither the ids' sequence nor fixed; position ids share the ids' shape.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import onnx_ir as ir

from qcompile.errors import CalibrationError


@dataclasses.dataclass(frozen=True)
class KvLayout:
    input_ids: str
    attention_mask: str | None
    position_ids: str | None
    pasts: tuple[tuple[str, str], ...]  # (past input, present output)
    past_dims: tuple[tuple[int, int], ...]  # (heads, head_dim) per past
    past_dtype: np.dtype
    int_dtypes: dict  # input name -> dtype of the integer inputs

    @property
    def derived(self) -> tuple[str, ...]:
        """Inputs qcompile can fill in from input_ids (and the model's own presents)."""
        return tuple(n for n in (self.attention_mask, self.position_ids) if n) + tuple(
            p for p, _ in self.pasts
        )


def _dims(value: ir.Value) -> list:
    if value.shape is None:
        return []
    return [d if isinstance(d, int) else (d.value if d.value is not None else None) for d in value.shape]


def _present_name(past: str) -> str:
    return (
        past.replace("past_key_values", "present").replace("past_", "present_").replace("past.", "present.")
    )


def find_kv_layout(model: ir.Model) -> KvLayout | None:
    """The KV-cache layout of `model`, or None when it has no past/present pairs."""
    initializers = set(model.graph.initializers)
    inputs = [v for v in model.graph.inputs if v.name not in initializers]
    outputs = list(model.graph.outputs)
    pasts = [
        v
        for v in inputs
        if v.dtype is not None
        and v.dtype.is_floating_point()
        and len(_dims(v)) == 4
        and not isinstance(_dims(v)[2], int)
    ]
    if not pasts:
        return None
    pairs, dims, taken = [], [], set()
    for past in pasts:
        pd = _dims(past)
        candidates = [
            o
            for o in outputs
            if o.name not in taken
            and o.dtype == past.dtype
            and len(_dims(o)) == 4
            and not isinstance(_dims(o)[2], int)
            and _dims(o)[2] != pd[2]
            and all(
                not isinstance(a, int) or not isinstance(b, int) or a == b
                for a, b in zip(pd[:2] + pd[3:], _dims(o)[:2] + _dims(o)[3:])
            )
        ]
        named = [o for o in candidates if o.name == _present_name(past.name)]
        if not candidates:
            return None
        present = (named or candidates)[0]
        taken.add(present.name)
        heads, head_dim = pd[1], pd[3]
        od = _dims(present)
        heads = heads if isinstance(heads, int) else od[1]
        head_dim = head_dim if isinstance(head_dim, int) else od[3]
        if not (isinstance(heads, int) and isinstance(head_dim, int)):
            raise CalibrationError(
                f"KV-cache input {past.name!r}: heads and head size must be fixed dimensions, got {pd}"
            )
        pairs.append((past.name, present.name))
        dims.append((heads, head_dim))
    ints = [v for v in inputs if v.dtype is not None and v.dtype.is_integer() and len(_dims(v)) == 2]
    by_name = {v.name: v for v in ints}
    ids = by_name.get("input_ids") or next(
        (v for v in ints if "mask" not in v.name and "position" not in v.name), None
    )
    if ids is None:
        raise CalibrationError("a KV-cache model needs an integer [batch, sequence] input for the token ids")
    seq = _dims(ids)[1]
    rest = [v for v in ints if v is not ids]
    mask = by_name.get("attention_mask") or next(
        (v for v in rest if _dims(v)[1] != seq and not isinstance(_dims(v)[1], int)), None
    )
    position = by_name.get("position_ids") or next(
        (v for v in rest if v is not mask and _dims(v)[1] == seq), None
    )
    return KvLayout(
        ids.name,
        mask.name if mask else None,
        position.name if position else None,
        tuple(pairs),
        tuple(dims),
        np.dtype(pasts[0].dtype.numpy()),
        {v.name: np.dtype(v.dtype.numpy()) for v in ints},
    )


def complete(layout: KvLayout, sample: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], list[str]]:
    """`sample` with every derivable input that is missing filled in (empty pasts, a mask of ones of
    length past + seq, positions counting from the past length), and the names filled; inconsistent
    inputs raise CalibrationError."""
    ids = sample.get(layout.input_ids)
    if ids is None or ids.ndim != 2:
        raise CalibrationError(f"KV-cache sample needs {layout.input_ids!r} as [batch, sequence]")
    batch, seq = ids.shape
    out, filled = dict(sample), []
    given = [p for p, _ in layout.pasts if p in sample]
    if given and len(given) != len(layout.pasts):
        raise CalibrationError(
            f"calibration data holds {len(given)} of the {len(layout.pasts)} past_key_values "
            "inputs: give all of them or none (then prefill is assumed)"
        )
    lengths = {sample[p].shape[2] for p in given if sample[p].ndim == 4}
    past = lengths.pop() if len(lengths) == 1 else 0
    if lengths or any(sample[p].ndim != 4 for p in given):
        raise CalibrationError("past_key_values inputs of one sample have different past lengths or ranks")
    for (name, _), (heads, head_dim) in zip(layout.pasts, layout.past_dims):
        if name in sample:
            if sample[name].shape != (batch, heads, past, head_dim):
                raise CalibrationError(
                    f"input {name!r}: shape {list(sample[name].shape)}, expected "
                    f"[{batch}, {heads}, {past}, {head_dim}] (batch of input_ids, one past length)"
                )
        else:
            out[name] = np.zeros((batch, heads, 0, head_dim), layout.past_dtype)
            filled.append(name)
    if layout.attention_mask:
        mask = sample.get(layout.attention_mask)
        if mask is None:
            out[layout.attention_mask] = np.ones(
                (batch, past + seq), layout.int_dtypes[layout.attention_mask]
            )
            filled.append(layout.attention_mask)
        elif mask.shape != (batch, past + seq):
            raise CalibrationError(
                f"input {layout.attention_mask!r}: shape {list(mask.shape)}, expected "
                f"[{batch}, {past + seq}] (past {past} + sequence {seq})"
            )
    if layout.position_ids:
        pos = sample.get(layout.position_ids)
        if pos is None:
            positions = np.arange(past, past + seq, dtype=layout.int_dtypes[layout.position_ids])
            out[layout.position_ids] = np.broadcast_to(positions, (batch, seq)).copy()
            filled.append(layout.position_ids)
        elif pos.shape != (batch, seq):
            raise CalibrationError(
                f"input {layout.position_ids!r}: shape {list(pos.shape)}, expected [{batch}, {seq}]"
            )
    return out, filled


def with_decode_samples(layout: KvLayout, samples: list[dict], run) -> list[dict]:
    """Every other prefill sample (empty pasts, two tokens or more) becomes a decode sample: its first
    half is run to get the model's own `present.*`, which become the pasts of its second half."""
    out = []
    for i, sample in enumerate(samples):
        ids = sample[layout.input_ids]
        prefill = all(sample[p].shape[2] == 0 for p, _ in layout.pasts)
        if i % 2 == 0 or not prefill or ids.shape[1] < 2:
            out.append(sample)
            continue
        cut = ids.shape[1] // 2
        first, _ = complete(layout, {layout.input_ids: ids[:, :cut]})
        presents = run(first, [present for _, present in layout.pasts])
        second = {layout.input_ids: ids[:, cut:], **{p: v for (p, _), v in zip(layout.pasts, presents)}}
        out.append(complete(layout, second)[0])
    return out
