"""Render the published index as HTML the way a markdown host shows it and take a picture at a given width.

    python scripts/screenshot_report.py                  # reports/README.md -> docs/screenshots/index-1280.png
    python scripts/screenshot_report.py --width 1280 --page reports/README.md --out docs/screenshots/x.png

Needs the ``markdown`` package and a headless Chromium (``chromium`` on Debian); neither is a dependency of
the suite. The page is laid out as GitHub lays out a README (an article column of at most 1,012 px, tables
scrolling inside their own box), and the script prints how many pixels the widest table overflows its column:
0 means every table reads without horizontal scrolling at that window width. Exit status 1 when one overflows.
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CSS = """
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; font-size: 16px; line-height: 1.5;
       margin: 0; background: #fff; color: #1f2328; }
article { box-sizing: border-box; max-width: 1012px; margin: 0 auto; padding: 32px; }
table { display: block; overflow: auto; border-collapse: collapse; margin: 16px 0; width: max-content;
        max-width: 100%; }
th, td { border: 1px solid #d1d9e0; padding: 6px 13px; } tr:nth-child(2n) { background: #f6f8fa; }
code { background: #eff1f3; padding: 0.2em 0.4em; border-radius: 6px; font-size: 85%; }
img { max-width: 100%; } h1, h2 { border-bottom: 1px solid #d1d9e0; padding-bottom: .3em; }
"""
MEASURE = """<script>
window.addEventListener('load', () => {
  let worst = 0;
  for (const t of document.querySelectorAll('table')) worst = Math.max(worst, t.scrollWidth - t.clientWidth);
  worst = Math.max(worst, document.documentElement.scrollWidth - window.innerWidth);
  document.body.setAttribute('data-overflow', String(worst));
});
</script>"""


def html_of(page: Path) -> str:
    import markdown

    body = markdown.markdown(page.read_text(), extensions=["tables", "fenced_code"])
    return (f"<!doctype html><html><head><meta charset='utf-8'><style>{CSS}</style>{MEASURE}</head>"
            f"<body><article>{body}</article></body></html>")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--page", default=str(ROOT / "reports" / "README.md"))
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=2400)
    ap.add_argument("--out", default=str(ROOT / "docs" / "screenshots" / "index-1280.png"))
    a = ap.parse_args(argv)
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        print("no headless Chromium found (apt-get install chromium)", file=sys.stderr)
        return 2
    page = Path(a.page)
    with tempfile.TemporaryDirectory() as tmp:
        html = Path(tmp) / "index.html"
        html.write_text(html_of(page))
        for src in (page.parent / "figures",):  # images the page links to, beside it
            if src.is_dir():
                shutil.copytree(src, Path(tmp) / "figures")
        flags = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                 f"--window-size={a.width},{a.height}"]
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(flags + [f"--screenshot={a.out}", html.as_uri()], check=True, capture_output=True,
                       timeout=120)
        dom = subprocess.run(flags + ["--virtual-time-budget=5000", "--dump-dom", html.as_uri()], check=True,
                             capture_output=True, text=True, timeout=120).stdout
    m = re.search(r'data-overflow="(-?\d+)"', dom)
    overflow = int(m.group(1)) if m else -1
    print(f"{page}: widest overflow {overflow} px at a {a.width} px window; picture {a.out}")
    return 0 if overflow == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
