"""Parameter searches: the request, the trials, the result; `flask search` and jobs share it.

A request is the backtest request (strategy, data range, one symbol or several pairs sharing
one wallet, capital, sizing, fees) plus the parameter ranges, an objective, a trial budget
and a time budget. All of it is checked before anything is queued (422: ranges outside the
strategy's declared ones, zero budgets, an unknown objective, a range without candles).
Optuna's TPE sampler proposes parameter sets (`Proposer`), and each trial is one backtest
with the live bot's code (`app.engine.backtest.run_backtest`, or
`app.engine.pairs.run_pairs_backtest` for several pairs, through `TrialRunner`), so a trial's
figures are those of a backtest of the same parameters; trials that differ only in exit
parameters reuse the signals. A parameter set proposed twice is scored once. `run_search`
runs the trials in this process; a background search (job kind "search") spreads them over
every worker (`app.services.search_workers`).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import cache
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.domain.search import (
    OBJECTIVES,
    Fold,
    ParamRange,
    RangeError,
    efficiency,
    objective_value,
    parse_ranges,
    stability,
    walk_forward_folds,
)
from app.domain.sizing import validate_sizing_config
from app.domain.strategies.cached import CachedSignals
from app.domain.times import iso_ms
from app.engine.backtest import run_backtest
from app.engine.fill_model import FeeSchedule
from app.engine.pairs import PairData, run_pairs_backtest
from app.errors import Conflict, NotFound, ValidationFailed
from app.market.base import TIMEFRAME_SECONDS
from app.services import backtests, bots
from app.services.jobs import submit
from app.store.job_contract import JobCancelled
from app.store.models import Job
from app.store.paging import fetch_page

if TYPE_CHECKING:
    import optuna

log = logging.getLogger("tradewind.searches")

KIND = "search"
MAX_TRIALS = 10_000
MAX_SECONDS = 24 * 3600
MAX_TRIALS_IN_RESULT = 1_000
MAX_FOLDS = 20
MIN_FOLD_CANDLES = 10  # a window shorter than this cannot say anything


@cache
def _optuna() -> ModuleType:
    """Optuna, imported when a search first proposes a trial: it costs a web worker about
    0.2 s of start-up, and most processes never run a search."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


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


def _distribution(r: ParamRange) -> optuna.distributions.BaseDistribution:
    distributions = _optuna().distributions
    if r.kind == "choice":
        return distributions.CategoricalDistribution(list(r.choices or ()))
    if r.kind == "int":
        return distributions.IntDistribution(int(r.low or 0), int(r.high or 0))
    return distributions.FloatDistribution(float(r.low or 0), float(r.high or 0))


def _key(params: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted(params.items()))


class Proposer:
    """Optuna's TPE over the trials recorded so far, whoever evaluated them.

    Trials are added as they are recorded (`add`); `ask(number)` proposes trial `number` with
    a sampler seeded from the search's seed and that number, so a proposal depends only on
    the recorded trials, not on which worker asks. A parameter set already scored is known
    (`known`): it is recorded again without a second evaluation."""

    def __init__(self, ranges: list[ParamRange], seed: int | None) -> None:
        self.distributions = {r.name: _distribution(r) for r in ranges}
        self.seed = seed
        self.study = _optuna().create_study(direction="maximize")
        self.scored: dict[tuple[tuple[str, Any], ...], Trial] = {}
        self.best: Trial | None = None
        self.recorded = 0

    def ask(self, number: int) -> dict[str, Any]:
        seed = None if self.seed is None else (self.seed * 1_000_003 + number) % 2**32
        self.study.sampler = _optuna().samplers.TPESampler(seed=seed)
        asked = self.study.ask(self.distributions)
        self.study.tell(asked, state=_optuna().trial.TrialState.FAIL)  # a placeholder: see add
        return dict(asked.params)

    def known(self, number: int, proposed: dict[str, Any]) -> Trial | None:
        seen = self.scored.get(_key(proposed))
        return None if seen is None else Trial(number, proposed, seen.value, seen.state,
                                               seen.metrics)  # fmt: skip

    def add(self, trial: Trial) -> None:
        states = _optuna().trial.TrialState
        state = states.FAIL if trial.value is None else states.COMPLETE
        self.study.add_trial(_optuna().trial.create_trial(
            params=trial.params, distributions=self.distributions, value=trial.value, state=state,
        ))  # fmt: skip
        self.scored.setdefault(_key(trial.params), trial)
        self.recorded += 1
        best = -math.inf if self.best is None or self.best.value is None else self.best.value
        if trial.value is not None and trial.value > best:
            self.best = trial


@dataclass(frozen=True)
class SearchData:
    """The candles a search runs over: one pair, or several walked together from one wallet.

    `ts` is the walk's time axis (the union of the pairs' candle times; one pair's own), so
    a window [lo, hi) of it - a walk-forward fold - is a span of time, cut alike from every
    pair."""

    pairs: tuple[backtests.CandleData, ...]
    ts: np.ndarray

    @classmethod
    def of(cls, data: backtests.CandleData | Sequence[backtests.CandleData]) -> SearchData:
        pairs = (data,) if isinstance(data, backtests.CandleData) else tuple(data)
        if len(pairs) == 1:
            return cls(pairs, pairs[0].candles.ts)
        return cls(pairs, np.unique(np.concatenate([d.candles.ts for d in pairs])))

    def __len__(self) -> int:
        return len(self.ts)

    @property
    def timeframe(self) -> str:
        return self.pairs[0].timeframe

    def window(self, lo: int, hi: int) -> SearchData:
        """The candles of times ts[lo:hi] of every pair."""
        if len(self.pairs) == 1:
            return SearchData((_window(self.pairs[0], lo, hi),), self.ts[lo:hi])
        if lo >= min(hi, len(self.ts)):
            return SearchData(tuple(_window(d, 0, 0) for d in self.pairs), self.ts[0:0])
        first = int(self.ts[lo])
        end = int(self.ts[hi]) if hi < len(self.ts) else None
        cut = tuple(backtests.CandleData(backtests._clip(d.candles, first, end), d.market,
                                         d.timeframe, d.source) for d in self.pairs)  # fmt: skip
        return SearchData(cut, self.ts[lo:hi])


@dataclass
class TrialRunner:
    """Evaluates trials over one window of candles: a backtest with the live bot's code,
    through a strategy that computes its signals once per signal-moving parameter set
    (`CachedSignals`, per pair), so trials differing only in exits reuse them."""

    spec: SearchSpec
    data: SearchData
    strategy: CachedSignals
    fees: FeeSchedule
    sizing: Any
    tf_seconds: int

    @classmethod
    def build(
        cls,
        spec: SearchSpec,
        data: backtests.CandleData | Sequence[backtests.CandleData] | SearchData,
        strategy: CachedSignals | None = None,
    ) -> TrialRunner:
        bt = spec.backtest
        pairs = data if isinstance(data, SearchData) else SearchData.of(data)
        return cls(
            spec, pairs, strategy or CachedSignals(backtests.spec_strategy(bt)),
            FeeSchedule(maker=bt.maker_fee, taker=bt.taker_fee, slippage_bps=bt.slippage_bps),
            validate_sizing_config(bt.sizing), TIMEFRAME_SECONDS[pairs.timeframe],
        )  # fmt: skip

    def window(self, lo: int, hi: int) -> TrialRunner:
        """The same search over the times [lo, hi) of the walk (sharing the signal cache)."""
        return replace(self, data=self.data.window(lo, hi))

    def evaluate(self, number: int, proposed: dict[str, Any]) -> Trial:
        """Trial `number`: the backtest of the search's parameters with `proposed` over them."""
        try:
            params = self.strategy.validate_params({**self.spec.backtest.strategy_params,
                                                    **proposed})  # fmt: skip
        except ValidationFailed:
            return Trial(number, proposed, None, "invalid")  # e.g. fast >= slow
        bt = self.spec.backtest
        pairs = self.data.pairs
        if bt.multi:
            result: Any = run_pairs_backtest(
                [PairData(d.candles, d.market) for d in pairs], self.strategy, params,
                capital=bt.capital, fees=self.fees, sizing=self.sizing,
                timeframe_seconds=self.tf_seconds,
                max_open_trades=bt.max_open_trades or len(pairs),
            )  # fmt: skip
        else:
            result = run_backtest(pairs[0].candles, self.strategy, params, capital=bt.capital,
                                  market=pairs[0].market, fees=self.fees, sizing=self.sizing,
                                  timeframe_seconds=self.tf_seconds)  # fmt: skip
        value = objective_value(self.spec.objective, result.metrics)
        if value is not None and not math.isfinite(value):
            value = None
        state = "complete" if value is not None else "failed"
        return Trial(number, proposed, value, state, result.metrics.to_dict())


def search_result(
    spec: SearchSpec, trials: list[Trial], stopped_by: str, seconds: float
) -> dict[str, Any]:
    """What a search found, from its recorded trials (by number)."""
    best: Trial | None = None
    for t in trials:  # the first of equal scores; a score of 0 is a score
        if t.value is not None and (best is None or best.value is None or t.value > best.value):
            best = t
    return {
        "objective": spec.objective,
        "trials_requested": spec.trials,
        "trials_done": len(trials),
        "stopped_by": stopped_by,
        "seconds": round(seconds, 3),
        "best": None
        if best is None
        else {
            "params": {**spec.backtest.strategy_params, **best.params},
            "value": best.value,
            "metrics": best.metrics,
            "trial": best.number,
        },  # fmt: skip
        "trials": [t.to_dict() for t in trials[:MAX_TRIALS_IN_RESULT]],
    }


def run_search(
    spec: SearchSpec,
    data: backtests.CandleData | Sequence[backtests.CandleData],
    *,
    on_trial: OnTrial | None = None,
    should_stop: Callable[[], bool] | None = None,
    runner: TrialRunner | None = None,
) -> dict[str, Any]:
    """Run the trials over `data` (one pair's candles, or several pairs') in this process
    (candles loaded once) and return the
    search's result; `flask search` and walk-forward folds use it. A background search runs
    the same trials spread over workers (`app.services.search_workers`)."""
    runner = runner or TrialRunner.build(spec, data)
    proposer = Proposer(spec.ranges, spec.seed)
    trials: list[Trial] = []
    started = time.monotonic()
    stopped_by = "trials"
    for number in range(spec.trials):
        if should_stop is not None and should_stop():
            raise JobCancelled()
        if time.monotonic() - started > spec.timeout_seconds:
            stopped_by = "time"
            break
        proposed = proposer.ask(number)
        trial = proposer.known(number, proposed) or runner.evaluate(number, proposed)
        proposer.add(trial)
        trials.append(trial)
        if on_trial is not None:
            on_trial(len(trials), proposer.best)
    return search_result(spec, trials, stopped_by, time.monotonic() - started)


def throttled(check: Callable[[], bool], every: float) -> Callable[[], bool]:
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


def folds_of(spec: SearchSpec, data: SearchData) -> list[Fold]:
    """The walk-forward folds over `data`'s time axis; 422 when a window would be too short."""
    wf = spec.walk_forward or {}
    folds = walk_forward_folds(len(data), wf["folds"], wf["in_sample"])
    short = [f for f in folds if min(f.is_hi - f.is_lo, f.oos_hi - f.oos_lo) < MIN_FOLD_CANDLES]
    if short:
        raise ValidationFailed(
            f"{len(data)} candles are too few for {wf['folds']} folds: every window "
            f"needs at least {MIN_FOLD_CANDLES}", code="too_few_candles",
        )  # fmt: skip
    return folds


def fold_seed(spec: SearchSpec, k: int) -> int | None:
    return None if spec.seed is None else spec.seed + k


def run_walk_forward(
    spec: SearchSpec,
    data: backtests.CandleData | Sequence[backtests.CandleData],
    *,
    on_trial: OnTrial | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> dict[str, Any]:
    """Search each fold's in-sample window, then backtest its best parameters on the
    out-of-sample window that follows; compare the two per fold and across folds."""
    runner = TrialRunner.build(spec, data)
    folds = folds_of(spec, runner.data)
    deadline = time.monotonic() + spec.timeout_seconds
    done_before = [0]

    def fold_progress(done: int, best: Trial | None) -> None:
        if on_trial is not None:
            on_trial(done_before[0] + done, best)

    fitted_folds: list[dict[str, Any]] = []
    for k, fold in enumerate(folds):
        left = deadline - time.monotonic()  # the time budget is the whole search's
        inner = SearchSpec(spec.backtest, spec.ranges, spec.objective, spec.trials, left,
                           fold_seed(spec, k))  # fmt: skip
        window = runner.window(fold.is_lo, fold.is_hi)
        fitted = run_search(inner, window.data.pairs, on_trial=fold_progress,
                            should_stop=should_stop, runner=window)  # fmt: skip
        done_before[0] += fitted["trials_done"]
        fitted_folds.append(fitted)
    return walk_forward_result(spec, runner, folds, fitted_folds)


def walk_forward_result(
    spec: SearchSpec, runner: TrialRunner, folds: list[Fold], fitted_folds: list[dict[str, Any]]
) -> dict[str, Any]:
    """Each fold's search result checked on its out-of-sample window, and the verdict."""
    data = runner.data
    day = 86_400 / runner.tf_seconds  # candles per day
    rows: list[dict[str, Any]] = []
    for k, (fold, fitted) in enumerate(zip(folds, fitted_folds, strict=True)):
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
        oos = runner.window(fold.oos_lo, fold.oos_hi).evaluate(k, best["params"])
        is_return = best["metrics"]["total_return"]
        oos_return = None if oos.metrics is None else oos.metrics["total_return"]
        rows.append({
            **row,
            "in_sample_value": best["value"], "out_of_sample_value": oos.value,
            "in_sample_return": is_return, "out_of_sample_return": oos_return,
            "efficiency": efficiency(is_return, (fold.is_hi - fold.is_lo) / day, oos_return,
                                     (fold.oos_hi - fold.oos_lo) / day),
        })  # fmt: skip
    timed_out = any(f["stopped_by"] == "time" for f in fitted_folds)
    return {"objective": spec.objective, "trials_per_fold": spec.trials,
            "trials_done": sum(f["trials_done"] for f in fitted_folds),
            "stopped_by": "time" if timed_out else "trials",
            "folds": rows,
            "walk_forward": _verdict(rows, spec.ranges)}  # fmt: skip


def _span(data: SearchData, lo: int, hi: int) -> dict[str, Any]:
    ts = data.ts
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


def summary(
    spec: SearchSpec, data: backtests.CandleData | Sequence[backtests.CandleData] | SearchData
) -> dict[str, Any]:
    """What the trials ran over (`candles`: timestamps of the walk, for several pairs)."""
    walk = data if isinstance(data, SearchData) else SearchData.of(data)
    ts = walk.ts
    several = {"symbols": [d.market.symbol for d in walk.pairs],
               "max_open_trades": spec.backtest.max_open_trades} if spec.backtest.multi else {}
    return {
        "strategy": spec.backtest.strategy,
        "symbol": walk.pairs[0].market.symbol,
        **several,
        "timeframe": walk.timeframe,
        "candles": len(ts),
        "start": iso_ms(int(ts[0])) if len(ts) else None,
        "end": iso_ms(int(ts[-1])) if len(ts) else None,
        "ranges": {r.name: r.to_dict() for r in spec.ranges},
    }  # fmt: skip


def load_search_data(spec: SearchSpec) -> SearchData:
    """The candles of every pair the search runs over; 422 when a pair has none in range."""
    bt = spec.backtest
    pairs = backtests.load_pairs(bt) if bt.multi else [backtests.load_candles(bt)]
    for symbol, data in zip(bt.symbols or (bt.symbol,), pairs, strict=True):
        if len(data.candles) == 0:
            raise ValidationFailed(f"no candles of {symbol} in the requested range",
                                   code="no_candles")  # fmt: skip
    return SearchData.of(pairs)


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


def bot_from_search(
    session: Session, user_id: int, job_id: int, name: str | None, symbol: str | None = None
) -> Any:
    """A paper bot (state `created`) running the searched strategy with the found parameters,
    on the search's market (`symbol`: one of its pairs, by default the first), capital,
    sizing and fees."""
    job = get_search(session, user_id, job_id)
    params = best_params(job)
    p = job.payload["backtest"]
    pairs = p.get("symbols") or [p["symbol"]]
    if symbol is not None and symbol not in pairs:
        raise _invalid("symbol", f"search {job.id} ran over {', '.join(pairs)}, not {symbol}",
                       "symbol_not_searched")  # fmt: skip
    data = {
        "name": name or f"{p['strategy']} from search {job.id}"[:100],
        "exchange": p.get("exchange") or "replay", "symbol": symbol or pairs[0],
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
