"""The files a sweep writes next to results.json: matrix.md and matrix.html."""
from __future__ import annotations

import argparse
from pathlib import Path

from harness.reports.html import render_html
from harness.reports.matrix import build_matrix, markdown
from harness.reports.results import Results, load


def write_reports(results: Results, directory: Path) -> list[Path]:
    """matrix.md and matrix.html next to results.json."""
    matrix = build_matrix(results)
    directory.mkdir(parents=True, exist_ok=True)
    md, html = directory / "matrix.md", directory / "matrix.html"
    md.write_text(markdown(matrix))
    html.write_text(render_html(matrix))
    return [md, html]


def main(argv: list[str]) -> int:
    """python -m harness matrix RESULTS [OUT_DIR]: (re)write matrix.md and matrix.html."""
    parser = argparse.ArgumentParser(prog="python -m harness matrix",
                                     description="(re)write matrix.md and matrix.html from a run's results.json")
    parser.add_argument("results", help="results.json or the directory holding it")
    parser.add_argument("out_dir", nargs="?", help="default: the results file's directory")
    args = parser.parse_args(argv)
    results = load(args.results)
    out = Path(args.out_dir) if args.out_dir else (Path(args.results).parent if args.results.endswith(".json")
                                                    else Path(args.results))
    for path in write_reports(results, out):
        print(f"wrote {path}")
    return 0
