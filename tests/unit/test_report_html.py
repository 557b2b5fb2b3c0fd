"""The HTML report: self-contained (inline CSS and PNG, no script, no link out), tables always,
figures when matplotlib is there, a note instead of a failure when it is not; and, when Chromium
is installed, the page as a browser draws it shows the table and the figures."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest

import qcompile
import tiny_models
from qcompile.recipe import Recipe
from qcompile.report_html import FORMAT_COLORS, render

sys.path.insert(0, str(Path(__file__).parents[2] / "bench"))
import report_screenshot  # noqa: E402  (bench/ holds the screenshot helper the bench script uses too)


@pytest.fixture(scope="module")
def report():
    recipe = Recipe("w4a16", algorithm="awq")
    return qcompile.compile(tiny_models.mlp(), recipe, tiny_models.calibration()).report


def test_page_is_self_contained_with_tables_figures_and_recipe(report):
    page = render(report)
    assert "<style>" in page and "<script" not in page.lower()
    assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:|//)", page)  # nothing fetched from anywhere
    assert len(re.findall(r'<img alt="figure" src="data:image/png;base64,', page)) == 1
    assert "<td>fc1</td>" in page and "<td>fc2</td>" in page and "output MSE (after)" in page
    after = f"{report.layers[0].details['output_mse']:.6f}"
    assert after in page  # the error after AWQ, as measured
    assert '"algorithm": "awq"' in page  # the exact recipe


def test_without_matplotlib_the_page_keeps_its_tables(report, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    page = render(report)
    assert "<img" not in page and "figures need matplotlib" in page
    assert "<td>fc1</td>" in page


@pytest.mark.skipif(
    report_screenshot.find_browser() is None,
    reason="no headless Chromium here (apt-get install chromium): the page is not drawn",
)
def test_chromium_draws_the_table_and_the_figures(report, tmp_path):
    from PIL import Image

    (tmp_path / "r.html").write_text(render(report))
    png = report_screenshot.screenshot(tmp_path / "r.html", tmp_path / "r.png", width=1200, height=1400)
    pixels = np.asarray(Image.open(png).convert("RGB")).reshape(-1, 3).astype(int)

    def share(hex_color, tol=6):
        rgb = np.array([int(hex_color[i : i + 2], 16) for i in (1, 3, 5)])
        return float(np.mean(np.abs(pixels - rgb).max(axis=1) <= tol))

    assert share(FORMAT_COLORS["int4"]) > 0.01  # the int4 bars of the bits-per-layer figure
    assert share("#f0f0f0") > 0.001  # table header cells
    assert share("#ffffff") < 0.95  # not a blank page


def test_compile_writes_the_page_beside_the_json_and_refuses_to_overwrite_it(tmp_path):
    from qcompile.errors import OutputError

    args = (tiny_models.mlp(), "w4a16", None)
    artifacts = qcompile.compile(*args, report_path=tmp_path / "r.report.json")
    assert artifacts.report_html == tmp_path / "r.report.html"
    assert "<td>fc1</td>" in artifacts.report_html.read_text()
    (tmp_path / "r.report.json").unlink()
    with pytest.raises(OutputError, match="exists"):
        qcompile.compile(*args, report_path=tmp_path / "r.report.json")
