"""How much quote currency a bot stakes on its next entry, and why.

Modes (`SizingConfig.mode`):

* `fixed`: `stake` quote units every time.
* `percent`: `percent` % of current equity.
* `kelly` (default): the Kelly fraction of the bot's own closed trades,
  f* = W - (1 - W) / R, with W = wins / (wins + losses) and R = average win / average loss
  (both as positive amounts). The stake is equity * min(f* * kelly_fraction, kelly_cap).
  Trades with a PnL of exactly 0 count towards the bootstrap threshold but are neither wins
  nor losses. Edge cases, decided explicitly:
    - fewer than `bootstrap_trades` closed trades: bootstrap, stake = bootstrap_percent % of
      the bot's capital (not equity: the bot has not earned a track record yet);
    - only break-even trades: no measurable edge, stake 0;
    - no losing trade: R is unbounded, f* = W = 1, so the stake is the capped fraction;
    - no winning trade: R = 0, f* is minus infinity (reported as None), stake 0;
    - f* <= 0: negative edge, stake 0.

In every mode the stake is at most the available cash, never negative, and rounded down to
`quantum` (default 1e-8, fine enough for any quote currency; the engine still applies the
market's own precision).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from decimal import ROUND_DOWN, Context, Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.domain.numbers import decimal_text
from app.domain.validation import validate_model

__all__ = ["SizingConfig", "SizingDecision", "size_position", "validate_sizing_config"]

ZERO = Decimal(0)
ONE = Decimal(1)
HUNDRED = Decimal(100)
DEFAULT_QUANTUM = Decimal("0.00000001")
_ROUNDING = Context(prec=60)  # prebuilt: a localcontext() per decision cost more than the maths

SizingMode = Literal["fixed", "percent", "kelly"]


class SizingConfig(BaseModel):
    """A bot's sizing rule; validated once when the bot is created or edited."""

    model_config = ConfigDict(extra="forbid")

    mode: SizingMode = "kelly"
    stake: Decimal | None = Field(None, gt=0, description="quote amount per entry (fixed)")
    percent: Decimal | None = Field(None, gt=0, le=100, description="% of equity (percent)")
    kelly_fraction: Decimal = Field(Decimal("0.5"), gt=0, le=1, description="scale of f*")
    kelly_cap: Decimal = Field(Decimal("0.25"), gt=0, le=1, description="max share of equity")
    bootstrap_trades: int = Field(5, ge=0, le=10_000, description="trades before Kelly applies")
    bootstrap_percent: Decimal = Field(
        Decimal("1"), gt=0, le=100, description="% of capital staked while bootstrapping"
    )

    @model_validator(mode="after")
    def _mode_has_its_number(self) -> SizingConfig:
        if self.mode == "fixed" and self.stake is None:
            raise ValueError("mode 'fixed' needs stake")
        if self.mode == "percent" and self.percent is None:
            raise ValueError("mode 'percent' needs percent")
        return self


def validate_sizing_config(data: Any) -> SizingConfig:
    """SizingConfig from a dict (None gives the defaults); ValidationFailed if bad."""
    return validate_model(SizingConfig, data, "invalid sizing configuration")


@dataclass(frozen=True, init=False)
class SizingDecision:
    """The stake and the numbers that led to it (None where a number does not apply)."""

    stake: Decimal
    mode: str
    bootstrap: bool
    win_rate: Decimal | None
    payoff_ratio: Decimal | None
    kelly_fraction: Decimal | None
    applied_fraction: Decimal | None
    reason: str
    trades: int
    capped_by_cash: bool = False

    def __init__(
        self,
        stake: Decimal,
        mode: str,
        bootstrap: bool,
        win_rate: Decimal | None,
        payoff_ratio: Decimal | None,
        kelly_fraction: Decimal | None,
        applied_fraction: Decimal | None,
        reason: str,
        trades: int,
        capped_by_cash: bool = False,
    ) -> None:
        # one write of the whole __dict__, not ten frozen setattrs: a backtest sizes per entry
        object.__setattr__(self, "__dict__", {
            "stake": stake, "mode": mode, "bootstrap": bootstrap, "win_rate": win_rate,
            "payoff_ratio": payoff_ratio, "kelly_fraction": kelly_fraction,
            "applied_fraction": applied_fraction, "reason": reason, "trades": trades,
            "capped_by_cash": capped_by_cash,
        })  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: Decimals as strings."""
        return {k: (str(v) if isinstance(v, Decimal) else v) for k, v in asdict(self).items()}


def _dec(value: Decimal | int | str | float) -> Decimal:
    if isinstance(value, Decimal):
        return value
    if isinstance(value, float):
        return Decimal(repr(value))
    return Decimal(value)


def _finish(
    stake: Decimal,
    cash: Decimal,
    quantum: Decimal,
    reason: str,
    mode: str,
    bootstrap: bool = False,
    win_rate: Decimal | None = None,
    payoff_ratio: Decimal | None = None,
    kelly_fraction: Decimal | None = None,
    applied_fraction: Decimal | None = None,
    trades: int = 0,
) -> SizingDecision:
    stake = max(stake, ZERO)
    available = max(cash, ZERO)
    capped = stake > available
    if capped:
        stake = available
        reason = f"{reason}; capped at available cash {available}"
    stake = stake.quantize(quantum, ROUND_DOWN, _ROUNDING)
    if stake == ZERO:
        stake = ZERO  # "0", not "0E-8"
    return SizingDecision(
        stake, mode, bootstrap, win_rate, payoff_ratio, kelly_fraction, applied_fraction, reason,
        trades, capped,
    )  # fmt: skip


def _kelly(
    pnls: list[Decimal],
    equity: Decimal,
    capital: Decimal,
    cash: Decimal,
    config: SizingConfig,
    quantum: Decimal,
) -> SizingDecision:
    n = len(pnls)
    numbers: dict[str, Any] = {
        "mode": "kelly",
        "trades": n,
        "bootstrap": False,
        "win_rate": None,
        "payoff_ratio": None,
        "kelly_fraction": None,
        "applied_fraction": ZERO,
    }
    if n < config.bootstrap_trades:
        applied = config.bootstrap_percent / HUNDRED
        numbers.update(bootstrap=True, applied_fraction=applied)
        reason = (
            f"bootstrap: {n} closed trades < {config.bootstrap_trades}, "
            f"staking {config.bootstrap_percent}% of capital"
        )
        return _finish(capital * applied, cash, quantum, reason, **numbers)

    wins = [p for p in pnls if p > 0]
    losses = [-p for p in pnls if p < 0]
    if not wins and not losses:
        reason = "no winning or losing trades: no measurable edge"
        return _finish(ZERO, cash, quantum, reason, **numbers)
    win_rate = Decimal(len(wins)) / Decimal(len(wins) + len(losses))
    numbers["win_rate"] = win_rate
    if not wins:
        numbers["payoff_ratio"] = ZERO
        return _finish(ZERO, cash, quantum, "no winning trades: negative edge", **numbers)

    if losses:
        payoff = (sum(wins, ZERO) / len(wins)) / (sum(losses, ZERO) / len(losses))
        f_star = win_rate - (ONE - win_rate) / payoff
        why = f"Kelly f* = {f_star:.4f} (win rate {win_rate:.4f}, payoff {payoff:.4f})"
        numbers["payoff_ratio"] = payoff
    else:
        f_star = win_rate  # W = 1: the limit of W - (1-W)/R as R grows
        why = "no losing trades: payoff ratio unbounded, f* = 1"
    numbers["kelly_fraction"] = f_star
    if f_star <= 0:
        return _finish(ZERO, cash, quantum, f"non-positive edge: {why}", **numbers)

    applied = min(f_star * config.kelly_fraction, config.kelly_cap)
    numbers["applied_fraction"] = applied
    if equity <= 0:
        return _finish(ZERO, cash, quantum, f"{why}; no equity to stake", **numbers)
    capped = applied == config.kelly_cap
    cap_note = f", capped at {decimal_text(config.kelly_cap)}" if capped else ""
    reason = f"{why}; x {decimal_text(config.kelly_fraction)}{cap_note} -> {applied:.4f} of equity"
    return _finish(equity * applied, cash, quantum, reason, **numbers)


def size_position(
    closed_pnls: Sequence[Decimal],
    *,
    equity: Decimal,
    capital: Decimal,
    cash: Decimal,
    config: SizingConfig | None = None,
    quantum: Decimal = DEFAULT_QUANTUM,
) -> SizingDecision:
    """Stake for the next entry of a bot.

    closed_pnls: realised PnL of each of the bot's closed trades (quote currency, any order).
    equity: the bot's current total value; capital: what it was given; cash: quote currency
    free to spend now. config: None means the defaults (half-Kelly capped at 25 %).
    """
    cfg = config or SizingConfig()
    equity, capital, cash = _dec(equity), _dec(capital), _dec(cash)
    pnls = [_dec(p) for p in closed_pnls]
    mode = cfg.mode
    if mode == "fixed":
        stake = cfg.stake if cfg.stake is not None else ZERO  # the validator requires it
        reason = f"fixed stake {decimal_text(stake)}"
        return _finish(stake, cash, quantum, reason, mode, False, None, None, None, None, len(pnls))
    if mode == "percent":
        applied = (cfg.percent or ZERO) / HUNDRED  # the validator requires percent
        return _finish(
            max(equity, ZERO) * applied,
            cash,
            quantum,
            f"{decimal_text(cfg.percent or ZERO)}% of equity {decimal_text(equity)}",
            mode,
            applied_fraction=applied,
            trades=len(pnls),
        )
    return _kelly(pnls, equity, capital, cash, cfg, quantum)
