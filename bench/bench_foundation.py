"""Foundation benchmark: import time of `wsgi`, and /api/health/ping throughput under gunicorn
next to a bare Flask app on the same gunicorn settings, measured side by side in one run.

    .venv/bin/python bench/bench_foundation.py [--seconds 5] [--connections 16]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _load import hammer, percentile  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BIN = Path(sys.executable).parent

BARE_APP = textwrap.dedent(
    """
    from flask import Flask, jsonify
    app = Flask(__name__)

    @app.get("/api/health/ping")
    def ping():
        return jsonify({"status": "ok"})
    """
)


def import_time(module: str, cwd: Path, env: dict[str, str], runs: int = 5) -> float:
    """Best wall time of a fresh `import module`, with compiled modules cached for both sides
    (the libraries' are, from their install; a first import here writes the app's)."""
    env = {k: v for k, v in env.items() if k != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run([str(BIN / "python"), "-c", f"import {module}"], cwd=cwd, env=env,
                   check=True, capture_output=True)  # fmt: skip
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(
            [str(BIN / "python"), "-c", f"import {module}"],
            cwd=cwd,
            env=env,
            check=True,
            capture_output=True,
        )
        best = min(best, time.perf_counter() - started)
    return best


SERVER_SETTINGS = ("workers", "worker_class", "threads", "timeout", "graceful_timeout", "keepalive")


def bare_config(directory: Path) -> Path:
    """Our gunicorn server settings (workers, threads, timeouts) without our hooks and logger:
    the bare app has no background work."""
    import runpy

    ours = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    conf = directory / "bare_gunicorn.conf.py"
    conf.write_text("".join(f"{name} = {ours[name]!r}\n" for name in SERVER_SETTINGS))
    return conf


def serve(
    app_ref: str, cwd: Path, env: dict[str, str], port: int, conf: Path
) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [
            str(BIN / "gunicorn"),
            "-c",
            str(conf),
            "--bind",
            f"127.0.0.1:{port}",
            "--access-logfile",
            "/dev/null",
            app_ref,
        ],
        cwd=cwd,
        # the bare app runs on our worker class too (`app.serving`, which imports nothing else)
        env={**env, "PYTHONPATH": os.pathsep.join(dict.fromkeys((str(cwd), str(ROOT))))},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    import urllib.request

    for _ in range(100):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health/ping", timeout=1)
            return proc
        except Exception:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"{app_ref} did not start")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        bare_dir = Path(tmp)
        (bare_dir / "bare.py").write_text(BARE_APP)
        env = {
            **os.environ,
            "DATABASE_URL": f"sqlite:///{bare_dir / 'bench.sqlite3'}",
            "SCHEDULER_ENABLED": "false",
            "LOG_LEVEL": "WARNING",
            "ACCESS_LOG": "0",
            "WEB_CONCURRENCY": "2",
        }
        env.pop("REDIS_URL", None)

        ours_import = import_time("wsgi", ROOT, env)
        bare_import = import_time("bare", bare_dir, env)
        print(
            f"import time: wsgi {ours_import * 1000:.0f} ms, bare Flask app "
            f"{bare_import * 1000:.0f} ms, ratio {ours_import / bare_import:.2f}x"
        )

        results = {}
        runs = (
            ("tradewind", "wsgi:app", ROOT, 18761, ROOT / "gunicorn.conf.py"),
            ("bare flask", "bare:app", bare_dir, 18762, bare_config(bare_dir)),
        )
        for name, ref, cwd, port, conf in runs:
            proc = serve(ref, cwd, env, port, conf)
            try:
                hammer(f"http://127.0.0.1:{port}/api/health/ping", 1.0, args.connections)
                rps, lat = hammer(
                    f"http://127.0.0.1:{port}/api/health/ping", args.seconds, args.connections
                )
            finally:
                proc.terminate()
                proc.wait(30)
            results[name] = rps
            print(
                f"{name:>10}: {rps:8.0f} req/s  p50 {percentile(lat, 0.5) * 1000:.1f} ms  "
                f"p99 {percentile(lat, 0.99) * 1000:.1f} ms"
            )
        print(
            f"ping throughput ratio tradewind/bare: "
            f"{results['tradewind'] / results['bare flask']:.2f}"
        )


if __name__ == "__main__":
    main()
