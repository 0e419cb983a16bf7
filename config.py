"""Tradewind configuration: the environment, read once into one validated settings object.

Every process (web worker, scheduler worker, CLI, Alembic) calls `get_settings()`; tests build
their own `Settings(...)` and hand it to `app.factory.create_app`. In production
(`APP_ENV=production`) weak or missing secrets stop the start with one line naming the variable.
"""

from __future__ import annotations

import logging
import os
import secrets
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

BASE_DIR = Path(__file__).resolve().parent
INSTANCE_DIR = BASE_DIR / "instance"
DEV_JWT_SECRET = "dev-insecure-jwt-secret-change-me-please-0000"
# A valid Fernet key, public on purpose: only ever used outside production.
DEV_ENCRYPTION_KEY = "ZGV2LWluc2VjdXJlLWVuY3J5cHRpb24ta2V5LTAwMDA="
MIN_JWT_SECRET_LENGTH = 32

log = logging.getLogger("tradewind.config")


FIRST_START = "first-start"


def first_start_anchor(path: Path) -> str:
    """The replay anchor stored in `path`, or now (to the second) stored there first.

    `REPLAY_ANCHOR=first-start` puts the replay's start at the moment the project first ran,
    so the demo shows today's dates however fast it replays. Every process must agree: the
    file is created once, atomically (written aside, then hard-linked into place; the loser
    of a race reads the winner's file)."""
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    now = datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_name(f".{path.name}.{os.getpid()}")
    scratch.write_text(now + "\n")
    try:
        os.link(scratch, path)
    except FileExistsError:
        pass
    finally:
        scratch.unlink(missing_ok=True)
    return path.read_text().strip()


class ConfigError(RuntimeError):
    """Configuration that must stop the start; the message names the variable."""


def normalise_database_url(url: str) -> str:
    """Accept `postgres://` (as PaaS platforms hand it out) and pick the psycopg2 driver."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg2://" + url[len("postgresql://") :]
    return url


class Settings(BaseSettings):
    """Every setting of the service, with the environment variable of the same name."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    app_env: Literal["development", "production", "test"] = "development"
    database_url: str = f"sqlite:///{INSTANCE_DIR / 'tradewind.sqlite3'}"
    redis_url: str | None = None
    redis_prefix: str = "tw:"
    redis_timeout_seconds: float = Field(default=0.25, gt=0)
    redis_breaker_seconds: float = Field(default=5.0, ge=0)
    jwt_secret_key: str | None = None
    encryption_key: str | None = None
    cors_origins: str = ""
    jwt_access_minutes: int = Field(default=15, gt=0)
    jwt_refresh_days: int = Field(default=30, gt=0)
    log_level: str = "INFO"
    log_format: Literal["json", "text"] | None = None
    max_content_length: int = 1_048_576

    db_pool_size: int = 10
    db_max_overflow: int = 10
    # Postgres: every wait on the database is bounded (see RAILWAY_DEPLOYMENT.md)
    db_connect_timeout_seconds: int = Field(default=3, ge=1)
    db_statement_timeout_ms: int = Field(default=30_000, ge=0)
    db_idle_in_transaction_timeout_ms: int = Field(default=60_000, ge=0)
    db_tcp_keepalives_idle_seconds: int = Field(default=10, ge=1)
    db_tcp_user_timeout_ms: int = Field(default=10_000, ge=0)
    db_ready_timeout_seconds: float = Field(default=1.5, gt=0)
    emergency_stop_retry_seconds: float = Field(default=10.0, gt=0)

    market_data: Literal["replay", "ccxt"] = "replay"
    candles_dir: str = str(BASE_DIR / "data" / "candles")
    candles_import_dir: str = str(INSTANCE_DIR / "candles")
    replay_anchor: str = "2026-01-01T00:00:00Z"
    replay_speed: float = Field(default=1.0, gt=0)
    ccxt_exchange: str = "binance"
    ccxt_base_url: str | None = None
    ccxt_api_key: str | None = None
    ccxt_secret: str | None = None
    ccxt_password: str | None = None
    ccxt_timeout_ms: int = 10_000
    ccxt_uid: str | None = None
    ccxt_max_retries: int = Field(default=3, ge=0)
    ccxt_backoff_base_s: float = Field(default=0.5, ge=0)
    portfolio_usd_pegs: str = "USDT,USDC"

    # Outbound HTTP to user-given URLs (notification channels)
    outbound_allow_private: bool = False
    outbound_timeout_seconds: float = Field(default=10.0, gt=0)
    telegram_api_base: str = "https://api.telegram.org"
    notification_lease_seconds: float = Field(default=60.0, gt=0)
    notification_max_attempts: int = Field(default=8, ge=1)
    notification_retry_seconds: float = Field(default=10.0, ge=0)
    notification_disable_after: int = Field(default=10, ge=1)
    notification_batch_size: int = Field(default=50, ge=1)
    notification_retention_days: int = Field(default=30, ge=1)
    signal_replay_seconds: float = Field(default=300.0, gt=0)
    signal_rate_limit: str = "30 per minute"

    scheduler_enabled: bool = True
    trading_enabled: bool = True
    self_healing_enabled: bool = True
    live_trading_enabled: bool = False

    # Accounts
    ratelimit_enabled: bool = True
    ratelimit_login: str = "10 per minute"
    ratelimit_login_account: str = "5 per minute"
    ratelimit_register: str = "5 per hour"
    ratelimit_register_account: str = "3 per hour"
    argon2_time_cost: int = Field(default=3, ge=1)
    argon2_memory_cost: int = Field(default=65536, ge=8)
    argon2_parallelism: int = Field(default=4, ge=1)

    # Bots and ticks
    tick_lease_seconds: float = Field(default=30.0, gt=0)
    tick_batch_size: int = Field(default=100, ge=1)
    tick_run_seconds: float = Field(default=1.0, gt=0)
    bootstrap_trades: int = Field(default=5, ge=0)
    # strategy documents: what one document may cost (see app/domain/strategies/doc_model.py)
    strategy_max_bytes: int = Field(default=64_000, ge=1_000)
    strategy_max_nodes: int = Field(default=400, ge=10)
    strategy_max_indicators: int = Field(default=40, ge=1)
    strategy_max_lookback: int = Field(default=5_000, ge=10)
    strategy_max_eval_ms: int = Field(default=2_000, ge=10)
    bot_tick_retention_days: int = Field(default=30, ge=1)

    # Background jobs and analysis
    job_lease_seconds: float = Field(default=60.0, gt=0)
    job_heartbeat_seconds: float = Field(default=5.0, gt=0)
    job_stale_seconds: float = Field(default=60.0, gt=0)
    job_max_attempts: int = Field(default=3, ge=1)
    job_retry_backoff_seconds: float = Field(default=5.0, ge=0)
    analysis_retention_days: int = Field(default=30, ge=1)
    patterns_dir: str = str(BASE_DIR / "patterns")

    # Safety: live gates, self-healing, protection defaults
    live_min_paper_days: float = Field(default=7, ge=0)
    live_max_drawdown: float = Field(default=0.15, ge=0, le=1)
    live_min_closed_trades: int = Field(default=10, ge=0)
    stuck_bot_intervals: float = Field(default=3.0, gt=0)
    stuck_bot_min_seconds: float = Field(default=30.0, ge=0)
    error_streak_pause: int = Field(default=5, ge=1)
    lease_grace_seconds: float = Field(default=10.0, ge=0)
    protection_max_drawdown: float | None = 0.25
    protection_max_losing_streak: int | None = 5
    protection_losing_streak_cooldown_minutes: float = 60.0
    protection_daily_loss_limit: float | None = 0.05
    protection_stoploss_guard_trades: int | None = 3
    protection_stoploss_guard_window_minutes: float = 60.0
    protection_stoploss_guard_cooldown_minutes: float = 60.0
    protection_trade_cooldown_minutes: float = 0.0

    # Operations
    metrics_token: str | None = None
    sse_heartbeat_seconds: float = Field(default=15.0, gt=0)
    sse_history_size: int = Field(default=200, ge=1)
    sse_max_connections: int | None = None
    sse_max_streams_per_user: int = Field(default=4, ge=1)
    sse_recheck_seconds: float = Field(default=2.0, gt=0)
    events_poll_seconds: float = Field(default=0.5, gt=0)
    event_retention_hours: float = Field(default=24.0, gt=0)
    trusted_proxy_count: int = Field(default=0, ge=0)

    port: int = 8000
    web_concurrency: int = 2
    web_threads: int = 8

    @field_validator("database_url")
    @classmethod
    def _normalise_database_url(cls, value: str) -> str:
        return normalise_database_url(value)

    @field_validator(
        "redis_url", "ccxt_base_url", "jwt_secret_key", "encryption_key", "metrics_token"
    )
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value or None

    @model_validator(mode="after")
    def _resolve_replay_anchor(self) -> Settings:
        if self.replay_anchor.strip().lower() == FIRST_START:
            self.replay_anchor = first_start_anchor(INSTANCE_DIR / "replay_anchor")
        return self

    @model_validator(mode="after")
    def _check_secrets(self) -> Settings:
        if self.app_env == "production":
            if not self.jwt_secret_key:
                raise ConfigError("JWT_SECRET_KEY is required in production")
            if len(self.jwt_secret_key) < MIN_JWT_SECRET_LENGTH:
                raise ConfigError(
                    f"JWT_SECRET_KEY must be at least {MIN_JWT_SECRET_LENGTH} characters "
                    "in production"
                )
            if not self.encryption_key:
                raise ConfigError("ENCRYPTION_KEY is required in production")
        return self

    @property
    def is_production(self) -> bool:
        return self.app_env == "production"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def cors_origin_list(self) -> list[str]:
        return [o.strip() for o in self.cors_origins.split(",") if o.strip()]

    @property
    def effective_jwt_secret(self) -> str:
        return self.jwt_secret_key or DEV_JWT_SECRET

    @property
    def effective_encryption_keys(self) -> list[str]:
        """Fernet keys, newest first: `ENCRYPTION_KEY` may hold several, comma-separated."""
        raw = self.encryption_key or DEV_ENCRYPTION_KEY
        return [k.strip() for k in raw.split(",") if k.strip()]

    def insecure_defaults_in_use(self) -> list[str]:
        used = []
        if not self.jwt_secret_key:
            used.append("JWT_SECRET_KEY")
        if not self.encryption_key:
            used.append("ENCRYPTION_KEY")
        return used


def load_settings(**overrides: object) -> Settings:
    """Build settings from the environment (plus overrides), turning errors into ConfigError."""
    from pydantic import ValidationError

    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        for error in exc.errors():
            cause = (error.get("ctx") or {}).get("error")
            if isinstance(cause, ConfigError):
                raise cause from None
        first = exc.errors()[0]
        name = ".".join(str(p) for p in first["loc"]).upper() or "configuration"
        raise ConfigError(f"{name}: {first['msg']}") from None


_active: Settings | None = None


def get_settings() -> Settings:
    """The process-wide settings: read from the environment once, or those `use_settings` set."""
    global _active
    if _active is None:
        _active = load_settings()
    return _active


def use_settings(settings: Settings) -> Settings:
    """Make these the process-wide settings (the app factory and tests call this)."""
    global _active
    _active = settings
    return settings


def settings_or_exit() -> Settings:
    """For entry points: one clear line and exit code 2 instead of a traceback."""
    try:
        settings = get_settings()
    except ConfigError as exc:
        print(f"tradewind: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    return settings


_warned_insecure = False


def warn_insecure_defaults(settings: Settings) -> None:
    """One line, once per process, naming every secret left at its development default.
    Called once logging is configured, so the warning has the configured shape."""
    global _warned_insecure
    names = settings.insecure_defaults_in_use()
    if names and not _warned_insecure:
        _warned_insecure = True
        log.warning(
            "%s not set: using insecure development defaults (never in production)",
            " and ".join(names),
        )


def generate_secret() -> str:
    """A strong value for JWT_SECRET_KEY (documented in the README)."""
    return secrets.token_urlsafe(48)
