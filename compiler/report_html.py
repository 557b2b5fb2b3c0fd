"""The report as one self-contained HTML page (OUT.report.html): inline CSS, figures as inline
base64 PNG (matplotlib without pyplot: no global state), no script and no network access.

Sections: summary, figures (bits and error per layer along the depth of the model; for
mixed precision the format map and the accuracy-versus-bits curve), the per-layer table and the
exact recipe. Without matplotlib the page keeps its tables and says why the figures are missing.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from pathlib import Path

from qcompile.report import LayerReport, Report

CSS = """body{font-family:system-ui,sans-serif;margin:1.5em 2em;color:#222;max-width:1400px}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 7px;text-align:left}
th{background:#f0f0f0}td.n{text-align:right;font-variant-numeric:tabular-nums}tr.kept td{color:#777}
img{max-width:100%;display:block;margin:.6em 0}pre{background:#f7f7f7;padding:.8em;font-size:12px}
.note{background:#fff6d6;padding:.4em .7em}"""

FORMAT_COLORS = {
    "int4": "#d62728",
    "uint4": "#e377c2",
    "fp4_e2m1": "#ff7f0e",
    "fp6_e3m2": "#bcbd22",
    "fp6_e2m3": "#8c564b",
    "int8": "#2ca02c",
    "fp8_e4m3fn": "#17becf",
}


def html_beside(report_json: str | Path) -> Path:
    """r.report.json -> r.report.html (when there is no OUT to name it after)."""
    path = Path(report_json)
    return path.with_name(path.name.removesuffix(".json") + ".html")


def _e(text) -> str:
    return html.escape(str(text), quote=False)  # text content only, never attribute values


def _num(x, digits: int) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    if isinstance(x, float) and math.isinf(x):
        return "inf"
    return f"{x:.{digits}f}"


def _errors(lr: LayerReport) -> tuple[float | None, float | None]:
    """Output MSE on calibration tokens with round-to-nearest weights, and after the algorithms."""
    return lr.details.get("output_mse_rtn"), lr.details.get("output_mse")


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return f'<img alt="figure" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def depth_figure(report: Report) -> str:
    """Bits per weight (bars coloured by format) and weight SQNR along the model's depth; the output
    error before and after the algorithms when the report has them."""
    layers = [lr for lr in report.layers if lr.quantized and lr.bits_per_weight is not None]
    errors = [_errors(lr) for lr in layers]
    has_errors = any(after is not None for _, after in errors)
    fig = _figure(11, 6.2 if has_errors else 4.4)
    rows = 3 if has_errors else 2
    x = range(len(layers))
    ax = fig.add_subplot(rows, 1, 1)
    formats = [lr.weight_format or "?" for lr in layers]
    ax.bar(x, [lr.bits_per_weight for lr in layers], color=[FORMAT_COLORS.get(f, "#7f7f7f") for f in formats])
    for f in dict.fromkeys(formats):
        ax.bar([0], [0], color=FORMAT_COLORS.get(f, "#7f7f7f"), label=f)
    ax.set_ylabel("bits per weight")
    ax.legend(fontsize=7, ncol=6, loc="upper right")
    ax.set_title("per layer, in graph order", fontsize=9)
    ax = fig.add_subplot(rows, 1, 2)
    ax.plot(
        x,
        [
            lr.weight_sqnr_db
            if lr.weight_sqnr_db is not None and math.isfinite(lr.weight_sqnr_db)
            else float("nan")
            for lr in layers
        ],
        marker=".",
        linewidth=1,
    )
    ax.set_ylabel("weight SQNR (dB)")
    if has_errors:
        ax = fig.add_subplot(rows, 1, 3)
        ax.semilogy(
            x,
            [b if b is not None else float("nan") for b, _ in errors],
            marker=".",
            linewidth=1,
            label="round to nearest",
        )
        ax.semilogy(
            x,
            [a if a is not None else float("nan") for _, a in errors],
            marker=".",
            linewidth=1,
            label="after " + "+".join(report.recipe.get("algorithm", "rtn").split()),
        )
        ax.set_ylabel("output MSE")
        ax.legend(fontsize=7)
    from matplotlib.ticker import MaxNLocator

    for axis in fig.axes:
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.set_xlim(-0.6, len(layers) - 0.4)
    fig.axes[-1].set_xlabel("layer index (graph order)")
    fig.tight_layout()
    return _png(fig)


def mixed_figures(plan, curve) -> list[str]:
    """The format map (bits per layer of the plan) and, after a sweep, accuracy against bits."""
    from qcompile.mixed import figures

    images = [_png_of(lambda buf: figures.bits_per_layer(plan, buf))]
    done = [p for p in curve or [] if p.cosine is not None]
    if done:
        series = {f"auto ({plan.method})": [(p.average_bits, p.cosine) for p in done]}
        images.append(_png_of(lambda buf: figures.accuracy_curve(series, buf)))
    return images


def _png_of(draw) -> str:
    buf = io.BytesIO()
    draw(buf)
    return f'<img alt="figure" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'


def _table(head, rows, numeric=(), kept=()) -> str:
    """An HTML table; columns in `numeric` right-aligned, rows whose index is in `kept` greyed."""
    out = ["<table>" + ("<tr>" + "".join(f"<th>{_e(h)}</th>" for h in head) + "</tr>" if head else "")]
    for r, row in enumerate(rows):
        cells = "".join(
            f"<td class=n>{_e(c)}</td>" if i in numeric else f"<td>{_e(c)}</td>" for i, c in enumerate(row)
        )
        out.append(f"<tr class=kept>{cells}</tr>" if r in kept else f"<tr>{cells}</tr>")
    return "".join(out) + "</table>"


def _summary(report: Report, plan=None) -> list[str]:
    quantized = [lr for lr in report.layers if lr.quantized]
    ratio = report.size_before / max(report.size_after, 1)
    size = f"{report.size_before / 1e6:.2f} MB -> {report.size_after / 1e6:.2f} MB ({ratio:.2f}x smaller)"
    precision = (
        report.recipe.get("precision", "?")
        if plan is None
        else f"auto ({plan.method}): {plan.average_bits:.3f} average bits for a budget of {plan.avg_bits:g}"
    )
    rows = [
        ("model", report.model),
        ("precision", precision),
        ("algorithm", report.recipe.get("algorithm", "rtn")),
        ("layers quantized", f"{len(quantized)} of {len(report.layers)}"),
        ("size", size),
    ]
    out = [_table(None, rows)]
    if report.accuracy:
        out.append(
            f"<p>Accuracy against the original on {report.eval_samples} {_e(report.eval_source)} "
            "(onnxruntime):</p>"
        )
        out.append(
            _table(
                ("output", "cosine mean", "cosine min", "max |err|", "mean |err|"),
                [
                    (
                        a.name,
                        f"{a.cosine_mean:.5f}",
                        f"{a.cosine_min:.5f}",
                        f"{a.max_abs_error:.4g}",
                        f"{a.mean_abs_error:.4g}",
                    )
                    for a in report.accuracy
                ],
                numeric=(1, 2, 3, 4),
            )
        )
    else:
        out.append("<p class=note>not verified: no accuracy measured (--no-verify)</p>")
    out += [f"<p>{_e(n)}</p>" for n in report.notes]
    return out


def _layer_table(report: Report) -> str:
    head = (
        "layer",
        "op",
        "N x K",
        "format",
        "granularity",
        "bits/w",
        "SQNR dB",
        "activations",
        "output MSE (RTN)",
        "output MSE (after)",
        "as / reason",
    )
    rows = []
    for lr in report.layers:
        before, after = _errors(lr)
        rows.append((*lr.cells(_num), _num(before, 6), _num(after, 6), lr.outcome()))
    kept = {i for i, lr in enumerate(report.layers) if not lr.quantized}
    return _table(head, rows, numeric=(2, 5, 6, 8, 9), kept=kept)


def render(report: Report, *, plan=None, curve=None) -> str:
    """The page as a string."""
    page = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        f"<title>qcompile report: {_e(report.model)}</title><style>{CSS}</style></head><body>",
        f"<h1>qcompile report: {_e(report.model)}</h1>",
        "<h2>Summary</h2>",
        *_summary(report, plan),
    ]
    page.append("<h2>Figures</h2>")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        page.append(
            "<p class=note>figures need matplotlib, which is not installed here "
            "(pip install matplotlib); the tables below are complete</p>"
        )
    else:
        page.append(depth_figure(report))
        if plan is not None:
            page += mixed_figures(plan, curve)
    page += ["<h2>Layers</h2>", _layer_table(report)]
    if plan is not None:
        page += ["<h2>Mixed-precision plan</h2>", f"<pre>{_e(plan.table())}</pre>"]
    page += ["<h2>Recipe</h2>", f"<pre>{_e(json.dumps(report.recipe, indent=2))}</pre>", "</body></html>"]
    return "\n".join(page) + "\n"
