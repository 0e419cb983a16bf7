"""Run every bench in one go and write `docs/performance.md`: each bench's own lines (every
figure printed beside its baseline from the same run, with the ratio), the machine and the date.

    .venv/bin/python bench/run_all.py [--quick] [--only NAME ...]

`--quick` shortens the timed windows (for a smoke run); `--only` re-runs the named benches
and keeps the other sections of the report as they were; the figures quoted in notes come from
a full run on an otherwise idle machine. Each bench runs as its own process, so one that fails
is reported as failed and the others still run.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable

# name -> (script, full arguments, quick arguments)
BENCHES: dict[str, tuple[str, list[str], list[str]]] = {
    "foundation": ("bench_foundation.py", [], ["--seconds", "2"]),
    "workers": ("bench_workers.py", [], ["--runs", "1"]),
    "requests": ("bench_requests.py", [], ["--seconds", "3"]),
    "claims and ticks": ("bench_ticks.py", [], ["--claims-only", "--seconds", "4"]),
    "backtest": ("bench_backtest.py", [], ["--repeat", "2", "--runs", "2"]),
    "search": ("bench_search.py", ["--workers", "1,2"], ["--trials", "40", "--plain", "20"]),
    "signals": ("bench_signals.py", [], ["--repeat", "2", "--tile", "2"]),
    "strategy documents": ("bench_strategies.py", [], ["--repeat", "2"]),
    "candle cache": ("bench_cache.py", [], ["--rounds", "2"]),
    "market": ("bench_market.py", [], []),
    "events": ("bench_events.py", [], ["--seconds", "2", "--count", "30"]),
}


def machine() -> str:
    cpu = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")),
        platform.processor() or "unknown CPU",
    ) if Path("/proc/cpuinfo").exists() else platform.processor()  # fmt: skip
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()}"


def run(name: str, script: str, args: list[str]) -> str:
    started = time.monotonic()
    proc = subprocess.run(
        [PYTHON, str(ROOT / "bench" / script), *args],
        cwd=ROOT, capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    took = time.monotonic() - started
    body = proc.stdout.strip() or "(no output)"
    if proc.returncode != 0:
        body += f"\n\nFAILED (exit {proc.returncode}):\n{proc.stderr.strip()[-2000:]}"
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (f"## {name}\n\n`bench/{script} {' '.join(args)}` ({took:.0f} s, {when})\n\n"
            f"```\n{body}\n```\n")  # fmt: skip


def sections_of(text: str) -> dict[str, str]:
    """The `## name` sections of a written report, by name."""
    parts = re.split(r"^(?=## )", text, flags=re.MULTILINE)[1:]
    return {part.split("\n", 1)[0][3:].strip(): part.rstrip("\n") + "\n" for part in parts}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", nargs="*", default=None, choices=sorted(BENCHES))
    parser.add_argument("--out", default=str(ROOT / "docs" / "performance.md"))
    args = parser.parse_args()

    out = Path(args.out)
    # --only re-measures some benches and keeps the others' sections (each carries its date)
    sections = sections_of(out.read_text()) if args.only and out.exists() else {}
    for name, (script, full, quick) in BENCHES.items():
        if args.only and name not in args.only:
            continue
        print(f"== {name}", flush=True)
        sections[name] = run(name, script, quick if args.quick else full)
        print(sections[name], flush=True)
    header = (
        "# Performance\n\n"
        "Written by `bench/run_all.py`; every figure is printed next to a baseline measured in "
        "the same run on the same machine, so ratios compare, absolute figures do not travel. "
        "Each section says when it was measured.\n\n"
        f"- machine: {machine()}\n"
        f"- mode: {'quick (short windows)' if args.quick else 'full'}\n\n"
    )
    ordered = [sections[name] for name in BENCHES if name in sections]
    out.write_text(header + "\n".join(ordered))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
