"""Block-wise against whole-model calibration on a bench model: the activation and weight scales
of every layer, computed both ways on the same samples, and their largest relative difference
(float32 round-off expected: the same ops on the same inputs, cut into blocks).

    python -m bench.blockwise_scales MODEL.onnx [--precision w8a8] [--algorithm rtn]
                                     [--samples 4] [--seq 64] [--calib CALIB.npz]

Without --calib the samples are random token ids named `input_ids`; with it, the first --samples
of the file (for models with more inputs, e.g. MiniLM's mask and token types).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx_ir as ir

from qcompile import layer_quantizer, planning
from qcompile.block_calibration import quantize_blockwise
from qcompile.blockwise import BlockModel
from qcompile.recipe import Recipe


def scales(path: Path, recipe: Recipe, samples: list, cuts) -> tuple[dict, float, int]:
    model = ir.load(path)
    planned, _ = planning.plan(model, recipe)
    groups = layer_quantizer.make_groups(planned, recipe)
    blocks = BlockModel(path, cuts=cuts)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        done = quantize_blockwise(blocks, groups, samples, recipe, folder=Path(folder))
    found = {
        p.layer.name: (qg.act_scale, r.qw.scales) for qg in done for p, r in zip(qg.group.planned, qg.results)
    }
    return found, time.perf_counter() - start, len(blocks.blocks.blocks)


def _rel(a, b) -> float:
    if a is None and b is None:
        return 0.0
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-30)))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--precision", default="w8a8")
    parser.add_argument("--algorithm", default="rtn")
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--seq", type=int, default=64)
    parser.add_argument("--vocab", type=int, default=32000)
    parser.add_argument(
        "--calib", type=Path, help="a calibration .npz (qcompile's format) to take samples from"
    )
    args = parser.parse_args(argv)
    recipe = Recipe.preset(args.precision, algorithm=args.algorithm)
    if args.calib is not None:
        from qcompile.calibration import load_calibration
        from qcompile.pipeline import input_specs

        samples = load_calibration(args.calib, input_specs(ir.load(args.model)))[: args.samples]
    else:
        rng = np.random.default_rng(0)
        samples = [
            {"input_ids": rng.integers(0, args.vocab, (1, args.seq), dtype=np.int64)}
            for _ in range(args.samples)
        ]
    blockwise, t_blocks, n_blocks = scales(args.model, recipe, samples, None)
    whole, t_whole, _ = scales(args.model, recipe, samples, ())
    act = max(_rel(blockwise[n][0], whole[n][0]) for n in whole)
    weight = max(_rel(blockwise[n][1], whole[n][1]) for n in whole)
    print(
        f"{len(whole)} layers, {n_blocks} blocks, {len(samples)} samples, {args.precision} "
        f"{args.algorithm}: block-wise {t_blocks:.1f} s, whole model {t_whole:.1f} s"
    )
    print(f"largest relative difference: activation scales {act:.2e}, weight scales {weight:.2e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
