"""The sweep's pytest defaults, in one place for ``nox -s sweep`` and the zoo runner, so
the zoo records exactly the tests and limits a sweep runs with (the slow scope, timeouts,
worker restarts, the memory guard). Pure standard library: the noxfile imports it before
any environment exists."""
from __future__ import annotations

import os


def default_max_rss_gb(workers: int) -> str:
    """Per-test memory limit: 80% of the machine's memory shared by the workers
    (HARNESS_MAX_RSS_GB overrides)."""
    if os.environ.get("HARNESS_MAX_RSS_GB"):
        return os.environ["HARNESS_MAX_RSS_GB"]
    try:
        with open("/proc/meminfo") as f:
            kb = next(int(line.split()[1]) for line in f if line.startswith("MemTotal:"))
    except (OSError, StopIteration):
        return "16"
    return f"{0.8 * kb / 1024 ** 2 / max(workers, 1):.1f}"


def sweep_defaults(workers: int) -> dict[str, list[str]]:
    return {"--models": ["--models", "all"], "--slow": ["--slow"], "--timeout": ["--timeout", "900"],
            "--max-rss-gb": ["--max-rss-gb", default_max_rss_gb(workers)],
            "--max-worker-restart": ["--max-worker-restart", "200"], "--progress-every": ["--progress-every", "60"],
            "--report-dir": ["--report-dir", "reports"], "--junitxml": ["--junitxml=reports/junit.xml"]}


def with_sweep_defaults(args: list[str], workers: int) -> list[str]:
    """``args`` with every sweep default the caller did not set put in front."""
    for option, value in sweep_defaults(workers).items():
        if not any(a == option or a.startswith(option + "=") for a in args):
            args = [*value, *args]
    return args
