"""Accuracy of quantized models against fp32, qcompile's recipes next to onnxruntime's quantizers,
all calibrated on the same data and measured by this one script with onnxruntime on the CPU.

    python -m bench.accuracy --model minilm|smollm2 --table e2e|fp|algorithms [--markdown]
    python -m bench.accuracy --model minilm --rows "qc:w4a16,qc:w4a16:algorithm=gptq,ort:nbits:RTN:128"

Metrics: all-MiniLM-L6-v2, mean sentence-embedding cosine on 64 held-out sentences;
SmolLM2-135M-Instruct, perplexity on bench/texts/eval.txt (18 windows of 128 tokens). Caveat for
SmolLM2: its weights were stored as GGUF Q4_1, so 4-bit weight results on it are optimistic.
Row syntax: `qc:PRESET[:key=value]...` (Recipe fields; numbers parsed; `opt.NAME=value` sets an
algorithm option, `search` meaning None; `calib=none` compiles without calibration data, so
qcompile generates its own, `calib=text` the same with a tokenizer.json beside a copy of the model,
so qcompile calibrates on its own text, `calib=random` passes --calib random; `seq=true` calibrates block by
block on the quantized blocks' outputs, --sequential), `ort:static:sym|asym`,
`ort:nbits:RTN|GPTQ|HQQ|KQUANT:BLOCK`, `mo:awq_lite|awq_clip|rtn_dq:BLOCK` (NVIDIA ModelOpt's
ONNX INT4 path) and `mo:int8|fp8:max|entropy` (its INT8 / FP8 Q/DQ of every MatMul); ModelOpt is
installed apart: `pip install nvidia-modelopt onnx_graphsurgeon onnxslim lief`.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from bench.tasks import MiniLM, SmolLM2, lowered

TABLES = {
    "e2e": "qc:fp8,qc:w8a8,qc:w4a16,qc:w4a8,ort:static:sym,ort:static:asym",
    "fp": "qc:w6a16,qc:w6a16:algorithm=fpsearch,qc:wfp4a8:scale_constraint=pow2,"
    "qc:wfp4a8,qc:w4a16,qc:w4a8,qc:fp8",
    "algorithms": ",".join(
        [
            *(
                f"qc:w4a16:group_size={g}{a}"
                for g in (128, 32)
                for a in (
                    "",
                    ":opt.mse_clip=false",
                    ":algorithm=hqq",
                    ":algorithm=gptq",
                    ":algorithm=awq",
                    ":lorc_rank=8",
                    ":algorithm=gptq:lorc_rank=8",
                    ":offsets=true",
                    ":offsets=true:algorithm=gptq",
                    ":offsets=true:algorithm=gptq:lorc_rank=8",
                )
            ),
            *(f"ort:nbits:{a}:{g}" for g in (128, 32) for a in ("RTN", "GPTQ", "HQQ")),
            "qc:w8a8",
            "qc:w8a8:algorithm=smoothquant",
            "qc:w8a8:algorithm=smoothquant:opt.alpha=search",
            "ort:static:sym",
            "ort:static:asym",
        ]
    ),
}


def _qcompile(bench, out: Path, spec: list[str], group_size: int) -> tuple[Path, bool, str]:
    import qcompile
    from qcompile.recipe import Recipe

    fields = {"precision": spec[0], "holdout": 0.0, "algorithm_options": {}, "group_size": group_size}
    calibration, sequential, model = bench.calib, False, bench.model
    for item in spec[1:]:
        key, value = item.split("=")
        if key == "calib":  # calib=none: qcompile generates its own; calib=random: --calib random
            calibration = None if value in ("none", "text") else value
            if value == "text":  # no data, a tokenizer.json beside the model: qcompile's own text
                model = bench.with_tokenizer()
            continue
        if key == "seq":  # seq=true: --sequential (block i+1 calibrated on quantized block i's outputs)
            sequential = value == "true"
            continue
        value = {"search": None, "true": True, "false": False}.get(value, _number(value))
        if key.startswith("opt."):
            fields["algorithm_options"][key[4:]] = value
        else:
            fields[key] = value
    recipe = Recipe(**fields)
    path = out / ("qc_" + "_".join(s.replace("=", "-") for s in spec) + ".onnx")
    artifacts = qcompile.compile(
        model, recipe, calibration, output=path, force=True, verify=False, sequential=sequential
    )
    bits, share = _mean_bits(artifacts.report)
    if any(n.startswith("plugin") for n in (lr.emitted_as or "" for lr in artifacts.report.layers)):
        path = lowered(path)
    fp8 = any(
        lr.activation_format == "fp8_e4m3fn" or lr.weight_format == "fp8_e4m3fn"
        for lr in artifacts.report.layers
    )
    return path, not fp8, f"{bits:.2f} ({share:.0%} of weights)"


def _number(text: str):
    """An int or float row value as a number; anything else stays a string."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _mean_bits(report) -> tuple[float, float]:
    """Parameter-weighted bits of the quantized layers, and their share of all constant weights."""
    layers = [lr for lr in report.layers if lr.quantized]
    params = [lr.shape[0] * lr.shape[1] for lr in layers]
    total = sum(lr.shape[0] * lr.shape[1] for lr in report.layers)
    return sum(p * lr.bits_per_weight for p, lr in zip(params, layers)) / max(sum(params), 1), sum(
        params
    ) / max(total, 1)


def _ort(bench, out: Path, spec: list[str], group_size: int) -> tuple[Path, bool, str]:
    from bench.common import ort_matmulnbits, ort_quantize_static

    with np.load(bench.calib) as data:
        calib = {k: data[k] for k in data.files}
    path = out / ("ort_" + "_".join(spec) + ".onnx")
    if spec[0] == "static":
        ort_quantize_static(bench.model, path, calib, symmetric_activations=spec[1] == "sym")
        return path, True, "8"
    algo, block = spec[1], int(spec[2])
    ort_matmulnbits(bench.model, path, algo=algo, block_size=block, calib=calib)
    return (
        path,
        True,
        f"{4 + {'HQQ': 64, 'KQUANT': 36}.get(algo, 32) / block:.2f}",
    )  # fp32 scales (+ fp32 zero points: HQQ; 4-bit zero points: KQUANT)


def _modelopt(bench, out: Path, spec: list[str], group_size: int) -> tuple[Path, bool, str]:
    from bench.common import modelopt_int4, modelopt_qdq

    with np.load(bench.calib) as data:
        calib = {k: data[k] for k in data.files}
    if spec[0] in ("int8", "fp8"):
        path = out / f"mo_{spec[0]}_{spec[1]}.onnx"
        modelopt_qdq(bench.model, path, mode=spec[0], method=spec[1], calib=calib)
        return path, True, "8"
    method, block = spec[0], int(spec[1])
    path = out / f"mo_{method}_{block}.onnx"
    modelopt_int4(bench.model, path, method=method, block_size=block, calib=calib)
    return path, True, f"{4 + 16 / block:.2f}"  # int4 codes, one fp16 scale per block


def _label(row: str) -> str:
    kind, *spec = row.split(":")
    if kind == "qc":
        return "qcompile " + " ".join(spec)
    if kind == "mo":
        if spec[0] in ("int8", "fp8"):
            return f"ModelOpt {spec[0].upper()} {spec[1]} (MatMul)"
        return f"ModelOpt INT4 {spec[0]} block {spec[1]}"
    if spec[0] == "static":
        kind = "int8 symmetric" if spec[1] == "sym" else "uint8 asymmetric"
        return f"onnxruntime quantize_static ({kind} act.)"
    return f"onnxruntime MatMulNBits {spec[1]} block {spec[2]}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("minilm", "smollm2"), required=True)
    parser.add_argument("--table", choices=sorted(TABLES))
    parser.add_argument("--rows")
    parser.add_argument(
        "--group-size", type=int, default=128, help="qcompile rows' group size unless a row sets it"
    )
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON")
    parser.add_argument(
        "--eval-text",
        default="eval",
        help="bench/texts/NAME.txt to evaluate on (eval3: a third "
        "text; MiniLM: its sentences instead of the built-in evaluation sentences)",
    )
    parser.add_argument("--eval-windows", type=int, help="SmolLM2: at most this many 128-token windows")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="score the models an earlier run of the same rows "
        "wrote (bench/out/<model>/rows.json) instead of quantizing again: another --eval-text",
    )
    args = parser.parse_args(argv)
    rows = (args.rows or TABLES[args.table or "e2e"]).split(",")
    bench = (
        MiniLM(args.eval_text)
        if args.model == "minilm"
        else SmolLM2(eval_windows=args.eval_windows, eval_text=args.eval_text)
    )
    out = bench.out
    results = [("fp32 (original)", "32", bench.baseline(), 0.0)]
    built_file = out / "rows.json"
    built = json.loads(built_file.read_text()) if built_file.exists() else {}
    for row in rows:
        kind, *spec = row.split(":")
        t0 = time.perf_counter()
        try:
            if args.reuse and row in built:
                path, optimize, bits = Path(built[row][0]), built[row][1], built[row][2]
            else:
                quantize = {"qc": _qcompile, "mo": _modelopt}.get(kind, _ort)
                path, optimize, bits = quantize(bench, out, spec, args.group_size)
                built[row] = [str(path), optimize, bits]
                built_file.write_text(json.dumps(built, indent=1))
            score = bench.score(path, optimize)
        except Exception as exc:  # a peer that cannot run is reported, not hidden
            score, bits = float("nan"), f"failed: {type(exc).__name__}: {str(exc)[:80]}"
        results.append((_label(row), bits, score, time.perf_counter() - t0))
        print(
            f"  {results[-1][0]:<64} bits {results[-1][1]:>6}  {bench.metric} {score:.5f}  "
            f"({results[-1][3]:.1f} s)",
            flush=True,
        )
    print(f"\n{bench.name}: {bench.metric} ({'higher' if bench.higher_is_better else 'lower'} is better)")
    if args.markdown:
        print(f"| method | bits/weight (quantized layers) | {bench.metric} | time (s) |\n|---|---|---|---|")
        for name, bits, score, secs in results:
            print(f"| {name} | {bits} | {score:.4f} | {secs:.0f} |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
