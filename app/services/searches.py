"""Parameter searches as background jobs (kind "search"), and the loop `flask search` shares.

A request is the backtest request (strategy, data range, symbol, capital, sizing, fees) plus
the parameter ranges, an objective, a trial budget and a time budget. All of it is checked
before anything is queued (422: ranges outside the strategy's declared ones, zero budgets,
an unknown objective, a range without candles). The job loads the candles once; Optuna's
TPE sampler proposes parameter sets, and each trial is one backtest with the live bot's code
(`app.engine.backtest.run_backtest`), so a trial's figures are those of a backtest of the
same parameters. A parameter set proposed twice is scored once. Progress (trials done, best
so far) goes out as `job_progress` events; a cancelled search stops between two trials.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import optuna
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.domain.search import (
    OBJECTIVES,
    ParamRange,
    RangeError,
    efficiency,
    objective_value,
    parse_ranges,
    stability,
    walk_forward_folds,
)
from app.domain.sizing import validate_sizing_config
from app.domain.times import iso_ms
from app.engine.backtest import run_backtest
from app.engine.fill_model import FeeSchedule
from app.errors import Conflict, NotFound, ValidationFailed
from app.market.base import TIMEFRAME_SECONDS
from app.market.errors import ExchangeUnavailable
from app.services import backtests, bots
from app.services.events import publish_event
from app.services.jobs import submit
from app.store.job_contract import JobCancelled, TransientJobError
from app.store.models import Job
from app.store.paging import fetch_page

log = logging.getLogger("tradewind.searches")

KIND = "search"
MAX_TRIALS = 10_000
MAX_SECONDS = 24 * 3600
MAX_TRIALS_IN_RESULT = 1_000
EVENT_EVERY_SECONDS = 1.0
MAX_FOLDS = 20
CANCEL_CHECK_SECONDS = 0.5
MIN_FOLD_CANDLES = 10  # a window shorter than this cannot say anything
optuna.logging.set_verbosity(optuna.logging.WARNING)


def _invalid(field: str, message: str, code: str = "validation_error") -> ValidationFailed:
    return ValidationFailed(message, code=code, details=[{"loc": ["body", field], "msg": message}])


@dataclass(frozen=True)
class SearchSpec:
    """A validated search: the backtest it varies, and how it varies it."""

    backtest: backtests.BacktestSpec
    ranges: list[ParamRange]
    objective: str
    trials: int
    timeout_seconds: float
    seed: int | None = None
    walk_forward: dict[str, Any] | None = None  # {"folds": k, "in_sample": share}

    def payload(self) -> dict[str, Any]:
        extra = {"walk_forward": self.walk_forward} if self.walk_forward else {}
        return {
            **extra,
            "backtest": self.backtest.payload(),
            "ranges": {r.name: r.to_dict() for r in self.ranges},
            "objective": self.objective,
            "trials": self.trials,
            "timeout_seconds": self.timeout_seconds,
            "seed": self.seed,
        }

    @classmethod
    def from_payload(cls, p: dict[str, Any]) -> SearchSpec:
        spec = backtests.BacktestSpec.from_payload(p["backtest"])
        schema = backtests.spec_strategy(spec).params_json_schema()
        return cls(spec, parse_ranges(p["ranges"], schema), p["objective"], int(p["trials"]),
                   float(p["timeout_seconds"]), p.get("seed"), p.get("walk_forward"))  # fmt: skip


def check_search(spec: backtests.BacktestSpec, data: dict[str, Any]) -> SearchSpec:
    """The search part of a request, checked against the strategy `spec` runs (422)."""
    objective = data.get("objective", "sharpe")
    if objective not in OBJECTIVES:
        raise _invalid("objective", f"unknown objective {objective!r}; one of {list(OBJECTIVES)}",
                       "unknown_objective")  # fmt: skip
    trials = data.get("trials", 100)
    if isinstance(trials, bool) or not isinstance(trials, int) or not 1 <= trials <= MAX_TRIALS:
        raise _invalid("trials", f"trials must be a whole number in 1..{MAX_TRIALS}")
    timeout = data.get("timeout_seconds", 600)
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not (0 < timeout <= MAX_SECONDS)
    ):
        raise _invalid("timeout_seconds", f"timeout_seconds must be in (0, {MAX_SECONDS}]")
    strategy = backtests.spec_strategy(spec)
    try:
        ranges = parse_ranges(data.get("ranges"), strategy.params_json_schema())
    except RangeError as exc:
        raise _invalid(exc.field, exc.message, "invalid_range") from None
    seed = data.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise _invalid("seed", "seed must be a whole number")
    walk = _walk_forward(data.get("walk_forward"))
    return SearchSpec(spec, ranges, objective, trials, float(timeout), seed, walk)


def _walk_forward(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not set(value) <= {"folds", "in_sample"}:
        raise _invalid("walk_forward", 'walk_forward is {"folds": 2..20, "in_sample": 0.5..0.9}')
    folds = value.get("folds", 4)
    share = value.get("in_sample", 0.75)
    if isinstance(folds, bool) or not isinstance(folds, int) or not 2 <= folds <= MAX_FOLDS:
        raise _invalid("walk_forward.folds", f"folds must be a whole number in 2..{MAX_FOLDS}")
    if isinstance(share, bool) or not isinstance(share, int | float) or not 0.5 <= share <= 0.9:
        raise _invalid("walk_forward.in_sample", "in_sample must be a share in [0.5, 0.9]")
    return {"folds": folds, "in_sample": float(share)}


def build_search(session: Session, user_id: int, data: dict[str, Any]) -> SearchSpec:
    """Validate a whole request (the backtest part as `POST /api/backtests` does)."""
    base = {k: v for k, v in data.items() if k not in {"ranges", "objective", "trials",
                                                        "timeout_seconds", "seed"}}  # fmt: skip
    return check_search(backtests.build_spec(session, user_id, base), data)


def submit_search(
    session: Session, user_id: int, data: dict[str, Any], idempotency_key: str | None = None
) -> Any:
    """Validate and queue; returns the jobs service's `Submission` (job, created)."""
    spec = build_search(session, user_id, data)
    return submit(session, user_id, KIND, spec.payload(), idempotency_key)


# -- running ---------------------------------------------------------------------------


@dataclass
class Trial:
    number: int
    params: dict[str, Any]
    value: float | None
    state: str  # "complete", "failed" (no score), "invalid" (the strategy refused the values)
    metrics: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"number": self.number, "params": self.params, "value": self.value,
                "state": self.state}  # fmt: skip


OnTrial = Callable[[int, "Trial | None"], None]


def _suggest(trial: optuna.Trial, r: ParamRange) -> Any:
    if r.kind == "choice":
        return trial.suggest_categorical(r.name, list(r.choices or ()))
    if r.kind == "int":
        return trial.suggest_int(r.name, int(r.low or 0), int(r.high or 0))
    return trial.suggest_float(r.name, float(r.low or 0), float(r.high or 0))


def run_search(
    spec: SearchSpec,
    data: backtests.CandleData,
    *,
    on_trial: OnTrial | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> dict[str, Any]:
    """Run the trials over `data` (candles loaded once) and return the search's result."""
    bt = spec.backtest
    strategy = backtests.spec_strategy(bt)
    sizing = validate_sizing_config(bt.sizing)
    fees = FeeSchedule(maker=bt.maker_fee, taker=bt.taker_fee, slippage_bps=bt.slippage_bps)
    tf_seconds = TIMEFRAME_SECONDS[data.timeframe]
    sampler = optuna.samplers.TPESampler(seed=spec.seed)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    scored: dict[tuple, Trial] = {}  # parameter set -> its trial (scored once)
    trials: list[Trial] = []
    best: Trial | None = None
    started = time.monotonic()
    stopped_by = "trials"
    for number in range(spec.trials):
        if should_stop is not None and should_stop():
            raise JobCancelled()
        if time.monotonic() - started > spec.timeout_seconds:
            stopped_by = "time"
            break
        ot = study.ask()
        proposed = {r.name: _suggest(ot, r) for r in spec.ranges}
        key = tuple(sorted(proposed.items()))
        trial = scored.get(key)
        if trial is None:
            trial = _evaluate(number, {**bt.strategy_params, **proposed}, proposed, spec,
                              strategy, data, fees, sizing, tf_seconds)  # fmt: skip
            scored[key] = trial
        else:
            trial = Trial(number, proposed, trial.value, trial.state, trial.metrics)
        if trial.value is None:
            study.tell(ot, state=optuna.trial.TrialState.FAIL)
        else:
            study.tell(ot, trial.value)
            if best is None or trial.value > (best.value or -math.inf):
                best = trial
        trials.append(trial)
        if on_trial is not None:
            on_trial(len(trials), best)
    return {
        "objective": spec.objective,
        "trials_requested": spec.trials,
        "trials_done": len(trials),
        "stopped_by": stopped_by,
        "seconds": round(time.monotonic() - started, 3),
        "best": None
        if best is None
        else {
            "params": {**bt.strategy_params, **best.params},
            "value": best.value,
            "metrics": best.metrics,
            "trial": best.number,
        },  # fmt: skip
        "trials": [t.to_dict() for t in trials[:MAX_TRIALS_IN_RESULT]],
    }


def _evaluate(
    number: int,
    values: dict[str, Any],
    proposed: dict[str, Any],
    spec: SearchSpec,
    strategy: Any,
    data: backtests.CandleData,
    fees: FeeSchedule,
    sizing: Any,
    tf_seconds: int,
) -> Trial:
    try:
        params = strategy.validate_params(values)
    except ValidationFailed:
        return Trial(number, proposed, None, "invalid")  # e.g. fast >= slow
    result = run_backtest(data.candles, strategy, params, capital=spec.backtest.capital,
                          market=data.market, fees=fees, sizing=sizing,
                          timeframe_seconds=tf_seconds)  # fmt: skip
    value = objective_value(spec.objective, result.metrics)
    if value is not None and not math.isfinite(value):
        value = None
    metrics = result.metrics.to_dict()
    return Trial(number, proposed, value, "complete" if value is not None else "failed", metrics)


def run_search_job(ctx: Any) -> dict[str, Any]:
    """Handler of job kind "search"."""
    spec = SearchSpec.from_payload(ctx.payload)
    try:
        data = backtests.load_candles(spec.backtest)
    except ExchangeUnavailable as exc:
        raise TransientJobError(str(exc)) from exc
    if len(data.candles) == 0:
        raise ValidationFailed("no candles in the requested range", code="no_candles")
    last = [0.0]
    total = spec.trials * (spec.walk_forward or {}).get("folds", 1)

    def on_trial(done: int, best: Trial | None) -> None:
        ctx.report_progress(done / total)
        now = time.monotonic()
        if now - last[0] >= EVENT_EVERY_SECONDS or done == total:
            last[0] = now
            publish_event(ctx.user_id, "job_progress", {
                "job_id": ctx.job_id, "kind": KIND, "state": "running",
                "progress": round(done / total, 4), "trials_done": done,
                "best_value": None if best is None else best.value,
                "best_params": None if best is None else best.params,
            })  # fmt: skip

    stop = _throttled(ctx.cancelled, CANCEL_CHECK_SECONDS)
    if spec.walk_forward:
        result = run_walk_forward(spec, data, on_trial=on_trial, should_stop=stop)
    else:
        result = run_search(spec, data, on_trial=on_trial, should_stop=stop)
    return {"summary": summary(spec, data), **result}


def _throttled(check: Callable[[], bool], every: float) -> Callable[[], bool]:
    """`check`, asked at most once per `every` seconds (a cancel check reads the database)."""
    last = [-math.inf, False]

    def ask() -> bool:
        now = time.monotonic()
        if now - last[0] >= every:
            last[0], last[1] = now, check()
        return bool(last[1])

    return ask


def _window(data: backtests.CandleData, lo: int, hi: int) -> backtests.CandleData:
    return backtests.CandleData(data.candles.slice(lo, hi), data.market, data.timeframe,
                                data.source)  # fmt: skip


def run_walk_forward(
    spec: SearchSpec,
    data: backtests.CandleData,
    *,
    on_trial: OnTrial | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> dict[str, Any]:
    """Search each fold's in-sample window, then backtest its best parameters on the
    out-of-sample window that follows; compare the two per fold and across folds."""
    wf = spec.walk_forward or {}
    folds = walk_forward_folds(len(data.candles), wf["folds"], wf["in_sample"])
    short = [f for f in folds if min(f.is_hi - f.is_lo, f.oos_hi - f.oos_lo) < MIN_FOLD_CANDLES]
    if short:
        raise ValidationFailed(
            f"{len(data.candles)} candles are too few for {wf['folds']} folds: every window "
            f"needs at least {MIN_FOLD_CANDLES}", code="too_few_candles",
        )  # fmt: skip
    bt = spec.backtest
    strategy = backtests.spec_strategy(bt)
    sizing = validate_sizing_config(bt.sizing)
    fees = FeeSchedule(maker=bt.maker_fee, taker=bt.taker_fee, slippage_bps=bt.slippage_bps)
    tf_seconds = TIMEFRAME_SECONDS[data.timeframe]
    day = 86_400 / tf_seconds  # candles per day
    deadline = time.monotonic() + spec.timeout_seconds
    done_before = [0]

    def fold_progress(done: int, best: Trial | None) -> None:
        if on_trial is not None:
            on_trial(done_before[0] + done, best)

    rows: list[dict[str, Any]] = []
    timed_out = False
    for k, fold in enumerate(folds):
        left = deadline - time.monotonic()  # the time budget is the whole search's
        inner = SearchSpec(bt, spec.ranges, spec.objective, spec.trials, left,
                           None if spec.seed is None else spec.seed + k)  # fmt: skip
        fitted = run_search(inner, _window(data, fold.is_lo, fold.is_hi),
                            on_trial=fold_progress, should_stop=should_stop)  # fmt: skip
        done_before[0] += fitted["trials_done"]
        timed_out = timed_out or fitted["stopped_by"] == "time"
        best = fitted["best"]
        row: dict[str, Any] = {
            "fold": k,
            "in_sample": _span(data, fold.is_lo, fold.is_hi),
            "out_of_sample": _span(data, fold.oos_lo, fold.oos_hi),
            "trials_done": fitted["trials_done"],
            "params": None if best is None else best["params"],
        }
        if best is None:
            rows.append({**row, "in_sample_value": None, "out_of_sample_value": None,
                         "in_sample_return": None, "out_of_sample_return": None,
                         "efficiency": None})  # fmt: skip
            continue
        checked = _window(data, fold.oos_lo, fold.oos_hi)
        oos = _evaluate(k, best["params"], best["params"], spec, strategy, checked, fees, sizing,
                        tf_seconds)  # fmt: skip
        is_return = best["metrics"]["total_return"]
        oos_return = None if oos.metrics is None else oos.metrics["total_return"]
        rows.append({
            **row,
            "in_sample_value": best["value"], "out_of_sample_value": oos.value,
            "in_sample_return": is_return, "out_of_sample_return": oos_return,
            "efficiency": efficiency(is_return, (fold.is_hi - fold.is_lo) / day, oos_return,
                                     (fold.oos_hi - fold.oos_lo) / day),
        })  # fmt: skip
    return {"objective": spec.objective, "trials_per_fold": spec.trials,
            "trials_done": done_before[0], "stopped_by": "time" if timed_out else "trials",
            "folds": rows,
            "walk_forward": _verdict(rows, spec.ranges)}  # fmt: skip


def _span(data: backtests.CandleData, lo: int, hi: int) -> dict[str, Any]:
    ts = data.candles.ts
    return {"start": iso_ms(int(ts[lo])), "end": iso_ms(int(ts[hi - 1])), "candles": hi - lo}


def _verdict(rows: list[dict[str, Any]], ranges: list[ParamRange]) -> dict[str, Any]:
    """Across folds: mean efficiency, compounded out-of-sample return, parameter stability,
    and a plain sentence saying whether the out-of-sample results hold up."""
    effs = [r["efficiency"] for r in rows if r["efficiency"] is not None]
    oos = [r["out_of_sample_return"] for r in rows if r["out_of_sample_return"] is not None]
    compounded = math.prod(1 + x for x in oos) - 1 if oos else None
    mean_eff = sum(effs) / len(effs) if effs else None
    params = [r["params"] for r in rows if r["params"] is not None]
    stable = {p.name: stability([ps.get(p.name) for ps in params]) for p in ranges}
    if compounded is None:
        holds, said = False, "no fold produced a scored result: nothing to judge"
    elif compounded <= 0:
        holds = False
        said = (f"falls apart out of sample: the chosen parameters lost "
                f"{-compounded:.2%} on data they were not fitted on")  # fmt: skip
    elif mean_eff is None or mean_eff < 0.5:
        holds = False
        said = ("falls apart out of sample: it earned less than half its in-sample rate "
                "on data it was not fitted on")  # fmt: skip
    else:
        holds = True
        said = (f"holds out of sample: {compounded:.2%} on unseen data, at {mean_eff:.0%} of "
                "the in-sample rate")  # fmt: skip
    return {"efficiency": mean_eff, "out_of_sample_return": compounded,
            "parameter_stability": stable, "holds": holds, "verdict": said}  # fmt: skip


def summary(spec: SearchSpec, data: backtests.CandleData) -> dict[str, Any]:
    """What the trials ran over."""
    c = data.candles
    return {
        "strategy": spec.backtest.strategy,
        "symbol": data.market.symbol,
        "timeframe": data.timeframe,
        "candles": len(c),
        "start": iso_ms(int(c.ts[0])) if len(c) else None,
        "end": iso_ms(int(c.ts[-1])) if len(c) else None,
        "ranges": {r.name: r.to_dict() for r in spec.ranges},
    }


def get_search(session: Session, user_id: int, job_id: int) -> Job:
    job = session.scalar(
        select(Job).where(Job.id == job_id, Job.user_id == user_id, Job.kind == KIND)
    )
    if job is None:
        raise NotFound(f"search {job_id} not found", code="search_not_found")
    return job


def best_params(job: Job) -> dict[str, Any]:
    """The parameters a finished search found: its best trial's, or for a walk-forward the
    last fold's (fitted on the most recent data). 409 when there are none."""
    result = job.result or {}
    if job.state != "succeeded":
        raise Conflict(f"search {job.id} has not succeeded ({job.state})", code="search_not_done")
    folds = [f for f in result.get("folds") or [] if f.get("params")]
    if folds:
        return dict(folds[-1]["params"])
    best = result.get("best")
    if not best:
        raise Conflict(f"search {job.id} found no scored parameters", code="search_no_best")
    return dict(best["params"])


def bot_from_search(session: Session, user_id: int, job_id: int, name: str | None) -> Any:
    """A paper bot (state `created`) running the searched strategy with the found parameters,
    on the search's market, capital, sizing and fees."""
    job = get_search(session, user_id, job_id)
    params = best_params(job)
    p = job.payload["backtest"]
    data = {
        "name": name or f"{p['strategy']} from search {job.id}"[:100],
        "exchange": p.get("exchange") or "replay", "symbol": p["symbol"],
        "timeframe": p["timeframe"], "strategy": p["strategy"], "strategy_params": params,
        "capital": p["capital"], "sizing": p.get("sizing"),
        "maker_fee": p.get("maker_fee", "0.001"), "taker_fee": p.get("taker_fee", "0.001"),
        "slippage_bps": p.get("slippage_bps", "0"),
    }  # fmt: skip
    if p.get("strategy_document_id") is not None:
        data |= {"strategy_document_id": p["strategy_document_id"],
                 "strategy_version": p["strategy_version"]}  # fmt: skip
    return bots.create_bot(session, user_id, data)


def list_searches(
    session: Session, user_id: int, *, limit: int, offset: int
) -> tuple[list[Job], int]:
    where = (Job.user_id == user_id, Job.kind == KIND)
    return fetch_page(session, Job, where, [Job.id.desc()], limit=limit, offset=offset)
