"""Open a matrix.html in a real headless browser and check what a reader relies on: every
model row is there, the model filter and the failures-only switch show the rows they
should, and a failing cell's details open. A page can be valid HTML and still be useless
(a script error leaves the filter dead, a 100 MB page never finishes loading); only a
browser running the page's own script says so.

``python -m harness check-html reports/matrix.html [--browser PATH]`` prints the page size
and each check; exit 1 on a problem, 2 when no Chromium is installed (Debian:
``apt-get install chromium``). The filters are driven through the page's deep links
(``#q=``, ``#bad=1``, ``#open=``), which run the same functions as typing and clicking.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import quote

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
LOAD_TIMEOUT_S = 120


def find_browser() -> str | None:
    return next((path for path in map(shutil.which, BROWSERS) if path), None)


@dataclass
class Page:
    """What a matrix page holds: rows (model, status, hidden), the 'shown' counter, the
    failure details (id -> open) and the cells that link to them."""

    rows: list[tuple[str, str, bool]] = field(default_factory=list)
    shown: str = ""
    details: dict[str, bool] = field(default_factory=dict)
    targets: list[str] = field(default_factory=list)


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.page, self._in_matrix, self._in_shown = Page(), False, False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table":
            self._in_matrix = a.get("id") == "matrix"
        elif tag == "tr" and self._in_matrix and "data-model" in a:
            hidden = "display:none" in (a.get("style") or "").replace(" ", "")
            self.page.rows.append((a["data-model"], a.get("data-status", ""), hidden))
        elif tag == "td" and "data-target" in a:
            self.page.targets.append(a["data-target"])
        elif tag == "details":
            self.page.details[a.get("id", "")] = "open" in a
        elif tag == "span" and a.get("id") == "shown":
            self._in_shown = True

    def handle_endtag(self, tag):
        if tag == "table":
            self._in_matrix = False
        elif tag == "span":
            self._in_shown = False

    def handle_data(self, data):
        if self._in_shown:
            self.page.shown += data


def read_page(text: str) -> Page:
    reader = _Reader()
    reader.feed(text)
    return reader.page


def rendered(browser: str, path: Path, fragment: str = "") -> Page:
    """The page's DOM after its script ran, as the browser holds it."""
    url = path.resolve().as_uri() + (f"#{fragment}" if fragment else "")
    proc = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                           "--virtual-time-budget=10000", "--dump-dom", url],
                          capture_output=True, text=True, timeout=LOAD_TIMEOUT_S)
    if proc.returncode != 0 or "<html" not in proc.stdout:
        raise RuntimeError(f"{browser} could not render {url} (exit {proc.returncode}): {proc.stderr[-800:]}")
    return read_page(proc.stdout)


def check_page(path: Path, browser: str) -> tuple[list[str], list[str]]:
    """(what was checked, the problems) for one matrix.html."""
    source = read_page(path.read_text())
    models = [m for m, _, _ in source.rows]
    bad = [m for m, status, _ in source.rows if status in ("fail", "known")]
    done, problems = [], []

    def expect(what: str, ok: bool, detail: str) -> None:
        (done if ok else problems).append(f"{what}: {detail}")

    page = rendered(browser, path)
    visible = [m for m, _, hidden in page.rows if not hidden]
    expect("rows", visible == models and page.shown.strip() == str(len(models)),
           f"{len(visible)} of {len(models)} model rows shown, counter says {page.shown.strip()!r}")
    if models:
        query = models[len(models) // 2][:6]
        want = [m for m in models if query in m]
        page = rendered(browser, path, f"q={quote(query)}")
        got = [m for m, _, hidden in page.rows if not hidden]
        expect("filter", got == want and page.shown.strip() == str(len(want)),
               f"#q={query}: {len(got)} rows shown, {len(want)} models contain it, counter {page.shown.strip()!r}")
    page = rendered(browser, path, "bad=1")
    got = [m for m, _, hidden in page.rows if not hidden]
    expect("failures only", got == bad, f"#bad=1: {len(got)} rows shown, {len(bad)} models with failures or known issues")
    missing = sorted(set(source.targets) - set(source.details))
    expect("details", not missing, f"{len(source.targets)} failing cells link to details"
           + (f", {len(missing)} to none: {missing[:3]}" if missing else ""))
    if source.targets:
        target = source.targets[0]
        page = rendered(browser, path, f"open={quote(target)}")
        expect("open details", page.details.get(target) is True, f"#open={target}: details "
               + ("opened" if page.details.get(target) else "not opened"))
    return done, problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness check-html", description=__doc__.split("\n\n")[0])
    parser.add_argument("page", type=Path, help="a matrix.html (python -m harness matrix writes one)")
    parser.add_argument("--browser", help=f"the browser binary (default: the first of {', '.join(BROWSERS)})")
    args = parser.parse_args(argv)
    if not args.page.is_file():
        print(f"error: {args.page}: no such file", file=sys.stderr)
        return 2
    browser = args.browser or find_browser()
    if not browser:
        print("error: no Chromium found (apt-get install chromium, or pass --browser)", file=sys.stderr)
        return 2
    size = args.page.stat().st_size
    print(f"{args.page}: {size / 1e6:.2f} MB, {len(read_page(args.page.read_text()).rows)} model rows; browser {browser}")
    done, problems = check_page(args.page, browser)
    for line in done:
        print(f"  ok    {line}")
    for line in problems:
        print(f"  FAIL  {line}")
    return 1 if problems else 0
