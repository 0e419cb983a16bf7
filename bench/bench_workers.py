"""Worker start-up and memory under gunicorn: the app preloaded in the master (the default,
workers forked ready) beside every worker importing it itself (PRELOAD_APP=0), measured side
by side in one run on the same settings.

    .venv/bin/python bench/bench_workers.py [--workers 4] [--runs 3]

Figures: seconds from starting gunicorn until every worker has started its background
subsystems (the lifecycle's first log line, after the app is loaded), the CPU seconds the
whole server spent to get there, and each worker's private memory (USS, from smaps_rollup):
what a worker costs that its siblings do not share.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
sys.path.insert(0, str(ROOT))

from tests.support.processes import child_pids, free_port  # noqa: E402


def private_mib(pid: int) -> float:
    lines = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]
    fields = dict(line.split(":", 1) for line in lines)
    kib = sum(int(fields[name].split()[0]) for name in ("Private_Clean", "Private_Dirty"))
    return kib / 1024


def cpu_seconds(pids: list[int]) -> float:
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return total


def start_once(preload: str, workers: int, directory: Path) -> tuple[float, float, float]:
    """(seconds until every worker is up, CPU seconds spent by then, mean worker USS MiB)."""
    log = directory / f"gunicorn-{preload}.log"
    env = {
        **os.environ,
        "PRELOAD_APP": preload,
        "WEB_CONCURRENCY": str(workers),
        "DATABASE_URL": f"sqlite:///{directory}/bench.sqlite3",
        "LOG_LEVEL": "INFO",
        "SCHEDULER_ENABLED": "false",
        "PROMETHEUS_MULTIPROC_DIR": str(directory / f"metrics-{preload}"),
    }
    env.pop("REDIS_URL", None)
    Path(env["PROMETHEUS_MULTIPROC_DIR"]).mkdir(exist_ok=True)
    started = time.perf_counter()
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", "--bind",
             f"127.0.0.1:{free_port()}", "wsgi:app"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            while len(re.findall(r"started config", log.read_text(errors="replace"))) < workers:
                if proc.poll() is not None or time.perf_counter() - started > 120:
                    raise SystemExit(f"gunicorn did not start:\n{log.read_text()[-2000:]}")
                time.sleep(0.005)
            up = time.perf_counter() - started
            pids = [proc.pid, *child_pids(proc.pid)]
            cpu = cpu_seconds(pids)
            uss = sum(private_mib(pid) for pid in pids[1:]) / max(len(pids) - 1, 1)
        finally:
            proc.terminate()
            proc.wait(60)
    return up, cpu, uss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    results: dict[str, list[tuple[float, float, float]]] = {"1": [], "0": []}
    with tempfile.TemporaryDirectory() as tmp:
        database = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp}/bench.sqlite3"}
        subprocess.run([str(BIN / "alembic"), "upgrade", "head"], cwd=ROOT, check=True,
                       capture_output=True, env=database)  # fmt: skip
        for _ in range(args.runs):  # alternate, so both see the same machine
            for preload in results:
                results[preload].append(start_once(preload, args.workers, Path(tmp)))
    best = {p: min(r) for p, r in results.items()}
    (up, cpu, uss), (up0, cpu0, uss0) = best["1"], best["0"]
    print(f"gunicorn with {args.workers} workers, best of {args.runs} (alternating runs):")
    print(f"  preloaded (default): every worker up in {up:.3f} s, {cpu:.2f} CPU s, "
          f"{uss:.1f} MiB private per worker")  # fmt: skip
    print(f"  baseline, each worker imports the app (PRELOAD_APP=0): {up0:.3f} s, "
          f"{cpu0:.2f} CPU s, {uss0:.1f} MiB private per worker")  # fmt: skip
    print(f"  ratio: {up / up0:.2f}x the time, {cpu / cpu0:.2f}x the CPU, "
          f"{uss / uss0:.2f}x the private memory per worker")  # fmt: skip


if __name__ == "__main__":
    main()
