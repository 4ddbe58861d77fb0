"""One command line for every tool of the harness: ``python -m harness <command> ...``.

Each command is a module with ``main(argv) -> exit code`` (its own argparse parser, so
``python -m harness <command> --help`` documents it). Modules are imported only when their
command runs: ``releases`` must start without importing torch or timm (nox calls it to
install a baseline before anything else), and ``export`` runs under old timm releases."""
from __future__ import annotations

import importlib
import sys

# command -> (module with main(argv), one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "export": ("harness.checks.differential", "write cross-version artifacts (or with --outputs-only the reference "
                                              "outputs) for the installed timm into DIR/<version>/"),
    "matrix": ("harness.reports.sweep_reports", "(re)write matrix.md and matrix.html from a run's results.json"),
    "check-html": ("harness.reports.browser_check", "open a matrix.html in headless Chromium: rows, filter, details"),
    "diff": ("harness.reports.diff", "new failures and fixes between two runs' results.json (exit 1 on new failures)"),
    "expected-status": ("harness.reports.expected_status", "record or check the expected status of every test id"),
    "zoo": ("harness.plugin.zoo", "the whole-zoo sweep in resumable shards; records expected/status-all.json"),
    "bench-sweep": ("harness.reports.bench_sweep", "seconds per model and family on a named sample vs timm's tests"),
    "durations": ("harness.plugin.sharding", "merge per-model durations from results.json for --shard balancing"),
    "bench-compare": ("harness.checks.benchmark_compare", "candidate throughput vs a baseline timm or a stored one"),
    "capabilities": ("harness.reports.capabilities_report", "capability -> number of models (meta-device discovery)"),
    "families": ("harness.models.checkpoint_sources", "the checkpoint family of every pretrained tag, as a table"),
    "patch-coverage": ("harness.checks.patch_size", "how many patch-embedding tags the patch_size family covers"),
    "sample": ("harness.models.sample", "a named sample of the zoo (the smallest model of each timm module)"),
    "releases": ("harness.weights.releases", "install old timm releases beside the shared torch; print their paths"),
    "registry-dump": ("harness.weights.registry_dump", "the importable timm's registry and public names as JSON"),
    "affected": ("harness.checks.affected", "models a change between two timm trees could affect"),
    "fingerprint": ("harness.checks.fingerprint", "fingerprints of the importable timm (run by affected)"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: python -m harness <command> [options]   (python -m harness <command> --help)", "", "commands:"]
    lines += [f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"error: unknown command {command!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[command][0])
    return int(module.main(rest) or 0)
