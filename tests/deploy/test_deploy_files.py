"""The deploy files say what the deployment guide says: migrations as the pre-deploy step, the
readiness path as health check, SSE unbuffered behind nginx, bytecode writing off under
systemd, and every setting documented."""

from __future__ import annotations

import json
import re
from pathlib import Path

from flask.testing import FlaskClient

from config import Settings

ROOT = Path(__file__).resolve().parents[2]
GUIDE = (ROOT / "RAILWAY_DEPLOYMENT.md").read_text()
OPS_VARIABLES = (
    "PORT", "WEB_CONCURRENCY", "WEB_THREADS", "PRELOAD_APP", "FORWARDED_ALLOW_IPS", "ACCESS_LOG",
    "TRUSTED_PROXY_COUNT", "METRICS_TOKEN", "METRICS_PORT", "METRICS_ADDR",
    "PROMETHEUS_MULTIPROC_DIR", "SSE_HEARTBEAT_SECONDS", "SSE_HISTORY_SIZE",
    "SSE_MAX_CONNECTIONS", "LOG_LEVEL", "LOG_FORMAT",
)  # fmt: skip


def graceful_timeout() -> int:
    text = (ROOT / "gunicorn.conf.py").read_text()
    return int(re.search(r"^graceful_timeout = (\d+)$", text, re.MULTILINE).group(1))


def test_railway_config_migrates_first_and_checks_readiness(client: FlaskClient) -> None:
    config = json.loads((ROOT / "railway.json").read_text())
    deploy = config["deploy"]
    assert deploy["preDeployCommand"] == ["alembic upgrade head"]
    assert deploy["startCommand"] == "gunicorn -c gunicorn.conf.py wsgi:app"
    assert (ROOT / config["build"]["dockerfilePath"]).is_file()
    assert deploy["drainingSeconds"] > graceful_timeout()
    assert isinstance(deploy["healthcheckTimeout"], int)
    ready = client.get(deploy["healthcheckPath"])
    assert ready.status_code == 200 and ready.get_json()["status"] == "ready"

    worker = json.loads((ROOT / "deploy" / "railway.worker.json").read_text())
    assert worker["deploy"]["startCommand"] == "flask --app wsgi worker"
    assert "healthcheckPath" not in worker["deploy"]


def test_dockerfile_and_procfile() -> None:
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    assert "PYTHONDONTWRITEBYTECODE=1" in dockerfile
    assert "requirements-prod.txt" in dockerfile
    assert 'CMD ["gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]' in dockerfile
    assert "USER tradewind" in dockerfile
    procfile = dict(
        line.split(": ", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line
    )
    assert procfile == {
        "release": "alembic upgrade head",
        "web": "gunicorn -c gunicorn.conf.py wsgi:app",
        "worker": "flask --app wsgi worker",
    }


def unit(name: str) -> dict[str, list[str]]:
    """A systemd unit as key -> values (keys such as Environment repeat)."""
    values: dict[str, list[str]] = {}
    for line in (ROOT / "deploy" / "systemd" / name).read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            values.setdefault(key, []).append(value)
    return values


def test_systemd_units() -> None:
    web, worker = unit("tradewind-web.service"), unit("tradewind-worker.service")
    for service in (web, worker):
        assert "PYTHONDONTWRITEBYTECODE=1" in service["Environment"]
        assert "APP_ENV=production" in service["Environment"]
        assert "PROMETHEUS_MULTIPROC_DIR=/run/tradewind/metrics" in service["Environment"]
        assert service["EnvironmentFile"] == ["/etc/tradewind/tradewind.env"]
        assert service["User"] == ["tradewind"]
        assert int(service["TimeoutStopSec"][0]) > graceful_timeout()
    assert web["ExecStartPre"] == ["/opt/tradewind/.venv/bin/alembic upgrade head"]
    assert "gunicorn -c gunicorn.conf.py" in web["ExecStart"][0]
    assert "127.0.0.1:8000" in web["ExecStart"][0]
    assert worker["ExecStart"][0].endswith("flask --app wsgi worker")


def test_nginx_proxies_headers_and_streams_events_unbuffered() -> None:
    conf = (ROOT / "deploy" / "nginx.conf").read_text()
    for header in ("X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "X-Request-ID"):
        assert f"proxy_set_header {header} " in conf
    sse = re.search(r"location = /api/realtime/events \{(.*?)\}", conf, re.DOTALL).group(1)
    assert "proxy_buffering off;" in sse and "proxy_cache off;" in sse and "gzip off;" in sse
    assert re.search(r"proxy_read_timeout \d+h;", sse)
    default_read = int(re.search(r"^    proxy_read_timeout (\d+)s;", conf, re.MULTILINE).group(1))
    assert default_read > 120  # above gunicorn's worker timeout
    log_format = re.search(r"log_format tradewind_json(.*?);\n", conf, re.DOTALL).group(1)
    assert "$uri" in log_format and "$request_uri" not in log_format and "$args" not in log_format
    metrics = re.search(r"location = /metrics \{(.*?)\}", conf, re.DOTALL).group(1)
    assert "deny all;" in metrics


def test_guide_documents_every_variable(settings: Settings) -> None:
    documented = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", GUIDE))
    wanted = {name.upper() for name in Settings.model_fields} | set(OPS_VARIABLES)
    missing = sorted(wanted - documented)
    assert not missing, f"RAILWAY_DEPLOYMENT.md does not document: {missing}"
    for step in ("alembic upgrade head", "/api/health/ready", "scripts/smoke_check.py"):
        assert step in GUIDE
