"""gunicorn's own logs in the application's shape (`logger_class` in gunicorn.conf.py).

The access log becomes one JSON object per request (or a readable line in development) with
the request id the app put on the response and the user id it left in the WSGI environ.
Tokens in query strings (the SSE `?token=`) are redacted before anything is written.
"""

from __future__ import annotations

import re
import traceback
from typing import Any

from gunicorn.glogging import Logger

from app.observability.logging import build_formatter, log_format
from config import get_settings

USER_ID_ENVIRON = "tradewind.user_id"
_SECRET_PARAM = re.compile(r"(?i)((?:^|&)(?:token|access_token|jwt)=)[^&]*")


def redact_query(query: str) -> str:
    return _SECRET_PARAM.sub(r"\1[redacted]", query or "")


class GunicornLogger(Logger):
    """gunicorn.error and gunicorn.access with the app's formatter and fields."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        self._format = _configured_format()
        formatter = build_formatter(self._format)
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                if getattr(handler, "_gunicorn", False):
                    handler.setFormatter(formatter)

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> None:
        if not self.access_log_enabled:
            return
        try:
            fields = access_fields(resp, environ, request_time)
            message = f'{fields["method"]} {fields["path"]} {fields["status"]}'
            if self._format != "json":
                message = (
                    f'{fields["remote_addr"]} "{message}" {fields["bytes"]}B '
                    f'{fields["duration_ms"]}ms rid={fields.get("request_id", "-")}'
                )
                fields = {}
            self.access_log.info(message, extra=fields)
        except Exception:
            self.error(traceback.format_exc())


def _configured_format() -> str:
    """The app's log format (settings include `.env`); the bare environment if they are
    invalid, so the app's own start-up reports the configuration error."""
    try:
        return log_format(get_settings())
    except Exception:
        return log_format()


def access_fields(resp: Any, environ: dict[str, Any], request_time: Any) -> dict[str, Any]:
    """The structured fields of one access-log line."""
    status = resp.status
    if isinstance(status, str):
        status = status.split(None, 1)[0]
    headers = resp.headers.items() if hasattr(resp.headers, "items") else resp.headers
    request_id = next((v for k, v in headers if k.lower() == "x-request-id"), None)
    query = redact_query(environ.get("QUERY_STRING", ""))
    path = environ.get("PATH_INFO", "") + (f"?{query}" if query else "")
    fields: dict[str, Any] = {
        "method": environ.get("REQUEST_METHOD"),
        "path": path,
        "status": int(status) if str(status).isdigit() else status,
        "bytes": getattr(resp, "sent", None) or 0,
        "duration_ms": round(request_time.total_seconds() * 1000, 2),
        "remote_addr": environ.get("REMOTE_ADDR"),
        "user_agent": environ.get("HTTP_USER_AGENT"),
    }
    if request_id:
        fields["request_id"] = request_id
    user_id = environ.get(USER_ID_ENVIRON)
    if user_id is not None:
        fields["user_id"] = user_id
    return fields


__all__ = ["GunicornLogger", "access_fields", "redact_query"]
