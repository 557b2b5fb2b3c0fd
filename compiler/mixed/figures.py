"""Pictures of a plan (PNG, matplotlib without pyplot: no global state) and one HTML page holding
the tables and the pictures (base64-embedded, so the page is a single file)."""

from __future__ import annotations

import base64
import html
import textwrap
from pathlib import Path

from qcompile.errors import MissingDependencyError

COLORS = {
    "int4": "#d62728",
    "fp4": "#ff7f0e",
    "fp6": "#bcbd22",
    "int8": "#2ca02c",
    "fp8": "#17becf",
    "fp16": "#1f77b4",
}


def require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise MissingDependencyError(
            "mixed-precision figures need matplotlib: pip install matplotlib"
        ) from None


def _figure(width: float = 10, height: float = 3.6):
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110)
    FigureCanvasAgg(fig)
    return fig


def bits_per_layer(plan, path: Path) -> Path:
    from qcompile.mixed.candidates import format_of

    names = list(plan.layers)
    fig = _figure()
    ax = fig.add_subplot()
    fmts = [format_of(plan.layers[n].preset) for n in names]
    ax.bar(
        range(len(names)),
        [plan.layers[n].bits for n in names],
        color=[COLORS.get(f, "#7f7f7f") for f in fmts],
        width=0.85,
    )
    ax.axhline(
        plan.average_bits,
        color="k",
        linestyle="--",
        linewidth=1,
        label=f"average {plan.average_bits:.3f} (budget {plan.avg_bits:g})",
    )
    for f in dict.fromkeys(fmts):
        ax.bar([0], [0], color=COLORS.get(f, "#7f7f7f"), label=f)
    ax.set_xlabel("layer (graph order)")
    ax.set_ylabel("bits per weight")
    ax.set_title(f"bits per layer ({plan.method})")
    ax.legend(fontsize=7, ncol=4, loc="upper left")
    fig.tight_layout()
    fig.savefig(path)
    return path


def sensitivity_per_layer(plan, path: Path) -> Path:
    names = list(plan.layers)
    methods = sorted({m for lp in plan.layers.values() for m in lp.sensitivity})
    fig = _figure(10, 1.9 * max(len(methods), 1) + 0.6)
    for i, m in enumerate(methods):
        ax = fig.add_subplot(len(methods), 1, i + 1)
        ax.plot(
            range(len(names)),
            [plan.layers[n].sensitivity.get(m, float("nan")) for n in names],
            marker=".",
            linewidth=1,
            color="C0" if m != plan.method else "C3",
        )
        ax.set_ylabel(m + (" *" if m == plan.method else ""), fontsize=8)
        ax.tick_params(labelsize=7)
    fig.axes[-1].set_xlabel("layer (graph order); * = method used for the plan")
    fig.suptitle("sensitivity per layer", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    return path


def accuracy_curve(
    series: dict[str, list[tuple[float, float]]],
    path: Path,
    *,
    ylabel: str = "mean output cosine",
    points: dict[str, list[tuple[float, float]]] | None = None,
    title: str = "",
) -> Path:
    """Lines (name -> [(average bits, metric)]) plus isolated markers (uniform presets). A series
    named "X, no guard" is drawn dashed in the colour of "X"."""
    fig = _figure(7, 4.2)
    ax = fig.add_subplot()
    colors: dict[str, str] = {}
    for name, xy in series.items():
        xy = sorted(p for p in xy if p[1] is not None)
        base = name.removesuffix(", no guard")
        color = colors.setdefault(base, f"C{len(colors) % 10}")
        if xy:
            ax.plot(
                *zip(*xy),
                marker="o",
                markersize=3,
                linewidth=1.2,
                label=name,
                color=color,
                linestyle="--" if base != name else "-",
            )
    for name, xy in (points or {}).items():
        for x, y in xy:
            ax.scatter([x], [y], marker="s", s=28, zorder=3, color="k")
            ax.annotate(name, (x, y), fontsize=7, xytext=(3, -9), textcoords="offset points")
    ax.set_xlabel("average bits per weight (scales included)")
    ax.set_ylabel(ylabel)
    ax.set_title("\n".join(textwrap.wrap(title or "accuracy versus average bits", 90)), fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    return path


def _img(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{html.escape(path.stem)}" src="data:image/png;base64,{data}">'


def write_report(plan, curve, report, folder: Path) -> list[Path]:
    """PNGs and index.html in `folder`; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    pngs = [
        bits_per_layer(plan, folder / "bits_per_layer.png"),
        sensitivity_per_layer(plan, folder / "sensitivity.png"),
    ]
    done = [p for p in curve if p.cosine is not None]
    if done:
        pngs.append(
            accuracy_curve(
                {f"auto ({plan.method})": [(p.average_bits, p.cosine) for p in done]},
                folder / "accuracy_vs_bits.png",
            )
        )
    page = [
        "<!doctype html><meta charset='utf-8'><title>qcompile mixed precision</title>",
        "<style>body{font-family:sans-serif;margin:2em}pre{font-size:12px}img{max-width:100%}</style>",
        f"<h1>Mixed precision: {html.escape(plan.method)}, {plan.average_bits:.4f} average bits "
        f"(budget {plan.avg_bits:g})</h1>",
    ]
    page += [f"<p>{html.escape(n)}</p>" for n in plan.notes]
    page += [_img(p) for p in pngs]
    if curve:
        rows = "".join(
            f"<tr><td>{p.budget:g}</td><td>{_f(p.average_bits, 4)}</td><td>{_f(p.cosine, 5)}</td>"
            f"<td>{html.escape(p.note)}</td></tr>"
            for p in curve
        )
        page.append(
            "<h2>Sweep</h2><table border=1 cellpadding=3><tr><th>budget</th><th>average bits</th>"
            f"<th>mean cosine (onnxruntime)</th><th>note</th></tr>{rows}</table>"
        )
    page += ["<h2>Plan</h2>", f"<pre>{html.escape(plan.table())}</pre>"]
    if report is not None:
        page += ["<h2>Compiled model (measured)</h2>", f"<pre>{html.escape(report.table())}</pre>"]
    out = folder / "index.html"
    out.write_text("\n".join(page) + "\n")
    return pngs + [out]


def _f(x, digits: int) -> str:
    return "-" if x is None else f"{x:.{digits}f}"
