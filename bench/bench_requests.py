"""Request benchmark: authenticated bot reads under gunicorn (2 workers, Postgres), each next to
`/api/health/ping` on the same server in the same run.

* `GET /api/bots` of a user with 5 bots, and `GET /api/bots/{id}`;
* the baseline: ping, which touches neither the database nor a token.

The load comes from `wrk` when the machine has it (its threads cost the server least), else
from the Python closed-loop generator in `bench/_load.py`. Goals (the speed issue): the list at
0.40x ping or better with p99 at most 2x ping's, the detail at 0.45x or better.

The three are measured in interleaved rounds (ping, list, detail, then again) and each ratio is
taken within its round, then the median over rounds is reported: this machine has slow spells
of several seconds that would otherwise land on one endpoint and not the other.

On a shared machine req/s swing with the neighbours' load, so each run also prints the CPU
the gunicorn workers spent per request (from /proc; Postgres' own CPU is not in it): ping's
CPU per request over ours is the ratio the server would reach on cores of its own.

    .venv/bin/python bench/bench_requests.py [--seconds 8] [--connections 32] [--rounds 3]

Needs Postgres on 127.0.0.1 (TEST_POSTGRES_URL) like the tests.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import urllib.request
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _load import hammer, percentile  # noqa: E402
from alembic import command  # noqa: E402
from bench_foundation import serve  # noqa: E402

from tests.support.databases import (  # noqa: E402
    alembic_config,
    create_postgres_database,
    drop_postgres_database,
)

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PASSWORD = "correct horse battery"
BOT = {"symbol": "ETH/BTC", "timeframe": "5m", "strategy": "sma_crossover",
       "strategy_params": {"fast": 5, "slow": 20}, "capital": "1"}  # fmt: skip


def call(base: str, method: str, path: str, body: dict | None = None, token: str = "") -> dict:
    request = urllib.request.Request(
        base + path, method=method, data=json.dumps(body).encode() if body else None,
        headers={"Content-Type": "application/json",
                 **({"Authorization": f"Bearer {token}"} if token else {})},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"{}")


def wrk(url: str, seconds: float, connections: int, token: str) -> tuple[float, float]:
    """Requests/s and p99 latency (s) from wrk."""
    args = ["wrk", "-t2", f"-c{connections}", f"-d{seconds:.0f}s", "--latency", url]
    if token:
        args[1:1] = ["-H", f"Authorization: Bearer {token}"]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    value, unit = re.search(r"99%\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
    if "Non-2xx" in out:
        raise SystemExit(f"{url}: non-2xx answers\n{out}")
    return rps, float(value) / {"us": 1e6, "ms": 1e3, "s": 1.0}[unit]


def worker_cpu_seconds(master: int) -> float:
    """User + system CPU of the gunicorn master's children (its workers), from /proc."""
    try:
        children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    except OSError:
        return float("nan")
    total = 0
    for pid in children:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (clock ticks)
    return total / os.sysconf("SC_CLK_TCK")


def measure(
    url: str, seconds: float, connections: int, master: int, token: str = ""
) -> tuple[float, float, float]:
    """Requests/s, p99 latency (s) and the workers' CPU seconds per request."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if shutil.which("wrk"):
        wrk(url, 1, connections, token)
    else:
        hammer(url, 1.0, connections, headers)
    cpu = worker_cpu_seconds(master)
    if shutil.which("wrk"):
        rps, p99 = wrk(url, seconds, connections, token)
    else:
        rps, latencies = hammer(url, seconds, connections, headers)
        p99 = percentile(latencies, 0.99)
    return rps, p99, (worker_cpu_seconds(master) - cpu) / max(rps * seconds, 1.0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    url = create_postgres_database("tw_bench_requests")
    try:
        command.upgrade(alembic_config(url), "head")
        env = {**os.environ, "DATABASE_URL": url, "SCHEDULER_ENABLED": "false",
               "LOG_LEVEL": "WARNING", "ACCESS_LOG": "0", "WEB_CONCURRENCY": "2",
               "RATELIMIT_ENABLED": "false"}  # fmt: skip
        env.pop("REDIS_URL", None)
        port = 18771
        with tempfile.TemporaryDirectory():
            proc = serve("wsgi:app", ROOT, env, port, ROOT / "gunicorn.conf.py")
            try:
                base = f"http://127.0.0.1:{port}"
                email = f"bench-{uuid.uuid4().hex[:6]}@example.com"
                call(base, "POST", "/api/auth/register", {"email": email, "password": PASSWORD})
                token = call(base, "POST", "/api/auth/login",
                             {"email": email, "password": PASSWORD})["access_token"]  # fmt: skip
                ids = [call(base, "POST", "/api/bots", {**BOT, "name": f"b{i}"}, token)["id"]
                       for i in range(5)]  # fmt: skip
                master = proc.pid
                paths = {"ping": "/api/health/ping", "list": "/api/bots",
                         "detail": f"/api/bots/{ids[0]}"}  # fmt: skip
                rounds: list[dict[str, tuple[float, float, float]]] = []
                for _ in range(args.rounds):  # interleaved: a slow spell hits all three alike
                    rounds.append({
                        name: measure(base + path, args.seconds, args.connections, master,
                                      "" if name == "ping" else token)
                        for name, path in paths.items()
                    })  # fmt: skip
            finally:
                proc.terminate()
                proc.wait(30)
    finally:
        drop_postgres_database(url)

    tool = "wrk" if shutil.which("wrk") else "python load generator"
    print(f"requests, gunicorn 2 workers, Postgres, {args.connections} connections ({tool}), "
          f"{args.rounds} interleaved rounds of {args.seconds:.0f} s each:")  # fmt: skip
    print(f"  load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    for n, measured in enumerate(rounds, 1):
        ping = measured["ping"]
        print(f"  round {n}: ping {ping[0]:6.0f} req/s  p99 {ping[1] * 1000:5.1f} ms  "
              f"worker CPU {ping[2] * 1e6:4.0f} us/req")  # fmt: skip
        for name, label in (("list", "GET /api/bots"), ("detail", "GET /api/bots/{id}")):
            rps, p99, cpu = measured[name]
            print(f"    {label:<18} {rps:6.0f} req/s  p99 {p99 * 1000:5.1f} ms  "
                  f"worker CPU {cpu * 1e6:4.0f} us/req  = {rps / ping[0]:.2f}x ping "
                  f"(by CPU {ping[2] / cpu:.2f}x), p99 {p99 / ping[1]:.1f}x ping's")  # fmt: skip
    for name, label, goal in (("list", "GET /api/bots", 0.40),
                              ("detail", "GET /api/bots/{id}", 0.45)):  # fmt: skip
        ratios = [m[name][0] / m["ping"][0] for m in rounds]
        by_cpu = [m["ping"][2] / m[name][2] for m in rounds]
        tails = [m[name][1] / m["ping"][1] for m in rounds]
        print(f"  {label:<18} median of rounds: {statistics.median(ratios):.2f}x ping "
              f"(goal {goal:.2f}x; by CPU {statistics.median(by_cpu):.2f}x), p99 "
              f"{statistics.median(tails):.1f}x ping's")  # fmt: skip

if __name__ == "__main__":
    main()
