"""Open a qcompile HTML report in headless Chromium and save a screenshot, to look at the page as a
user's browser draws it (no network: the page is self-contained).

    python bench/report_screenshot.py MODEL.q.report.html shot.png [--height 3000]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--hide-scrollbars",
]


def find_browser() -> str | None:
    return next((shutil.which(b) for b in BROWSERS if shutil.which(b)), None)


def screenshot(page: Path, png: Path, *, width: int = 1400, height: int = 3000, timeout: float = 120) -> Path:
    browser = find_browser()
    if browser is None:
        raise RuntimeError("no headless browser found (apt-get install chromium)")
    png.unlink(missing_ok=True)
    cmd = [
        browser,
        *FLAGS,
        f"--window-size={width},{height}",
        f"--screenshot={png.resolve()}",
        page.resolve().as_uri(),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if not png.is_file():
        raise RuntimeError(f"{browser} wrote no screenshot (exit {proc.returncode}): {proc.stderr[-400:]}")
    return png


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("page", type=Path)
    parser.add_argument("png", type=Path)
    parser.add_argument("--height", type=int, default=3000)
    args = parser.parse_args()
    print(screenshot(args.page, args.png, height=args.height), file=sys.stderr)


if __name__ == "__main__":
    main()
