"""Background searches whose trials any worker on any machine may run.

A search is a job (kind "search"): the worker that claims it coordinates (it opens the
search's run, takes trials itself, publishes progress, waits for trials still out and writes
the result), and every other worker helps with its trials (`help_searches`, a periodic job).
The trials are rows of `search_trials`, claimed like the other work (`app.store.search_trials`):

1. lock the search's run row, mark trials whose lease ran out `lost`, add the trials
   recorded since this worker last looked to its Optuna study, and reserve the next trial
   number as a running trial leased to this worker; commit;
2. ask the study for that trial's parameters (outside the lock, so workers ask in parallel;
   the sampler is seeded from the search's seed and the number) and evaluate them, outside
   any transaction (the lease renewed meanwhile), with the candles and signals this worker
   keeps for the search (`Prepared`); a parameter set scored before is not evaluated again;
3. record the parameters and the result, fenced on the lease: once, or not at all if it was
   declared lost (in the transaction that reserves this worker's next trial, so one commit a
   trial).

A lost trial is not counted, and another is proposed in its place, so a search ends with the
trials it asked for unless its time budget ends it first; a worker killed mid-trial loses that
trial only. The coordinator is a job like any other: killed, its job is requeued by the
heartbeat rule and the next coordinator carries on from the recorded trials. On SQLite (the
embedded default) the coordinator runs every trial in its own process.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select

from app.domain.search import Fold
from app.market.errors import ExchangeUnavailable
from app.services.events import publish_event
from app.services.searches import (
    KIND,
    Proposer,
    SearchData,
    SearchSpec,
    Trial,
    TrialRunner,
    fold_seed,
    folds_of,
    load_search_data,
    search_result,
    summary,
    throttled,
    walk_forward_result,
)
from app.services.trial_leases import Leases, lease_keeper
from app.store import search_trials as store
from app.store.base import utcnow
from app.store.db import session_scope
from app.store.job_contract import JobCancelled, TransientJobError
from app.store.models import Job
from app.store.models.searches import SearchRun

log = logging.getLogger("tradewind.searches")

EVENT_EVERY_SECONDS = 1.0
CANCEL_CHECK_SECONDS = 0.5
WAIT_SECONDS = 0.05  # the coordinator's pause while other workers finish the last trials
HELP_SECONDS = 5.0  # how long one periodic call helps before it lets its worker do other work
MAX_PREPARED = 4

TOOK, COPIED, WAIT, DONE, CLOSED = "took", "copied", "wait", "done", "closed"


@dataclass
class Prepared:
    """What a worker keeps for a search it works on: the candles (loaded once), a runner per
    fold sharing one signal cache, a proposer per fold, and how far it has read the results."""

    job_id: int
    started: datetime  # the run's start: a job id alone may name another search after a reset
    spec: SearchSpec
    data: SearchData  # one pair's candles, or several pairs'
    runner: TrialRunner  # over all the candles (walk-forward checks its folds with it)
    folds: list[Fold] | None
    runners: list[TrialRunner]
    proposers: list[Proposer]
    seen_seq: int = 0
    pending: Pending | None = None  # evaluated, recorded with the next proposal (or `flush`)
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass(frozen=True)
class Pending:
    """A trial this worker has evaluated and not yet recorded."""

    trial_id: int
    fold: int
    owner: str
    trial: Trial
    copied: bool = False  # a parameter set scored before: its result, not evaluated again


_prepared: OrderedDict[tuple[int, datetime], Prepared] = OrderedDict()
_prepared_lock = threading.Lock()


def prepare(job_id: int, started: datetime, payload: dict[str, Any]) -> Prepared:
    """This worker's `Prepared` for a search (built once; 422 for candles that cannot do)."""
    with _prepared_lock:
        found = _prepared.get((job_id, started))
        if found is not None:
            _prepared.move_to_end((job_id, started))
            return found
    spec = SearchSpec.from_payload(payload)
    data = load_search_data(spec)
    runner = TrialRunner.build(spec, data)
    if spec.walk_forward:
        folds: list[Fold] | None = folds_of(spec, data)
        runners = [runner.window(f.is_lo, f.is_hi) for f in folds or ()]
        proposers = [Proposer(spec.ranges, fold_seed(spec, k)) for k in range(len(runners))]
    else:
        folds, runners, proposers = None, [runner], [Proposer(spec.ranges, spec.seed)]
    made = Prepared(job_id, started, spec, data, runner, folds, runners, proposers)
    with _prepared_lock:
        made = _prepared.setdefault((job_id, started), made)
        while len(_prepared) > MAX_PREPARED:
            _prepared.popitem(last=False)
    return made


def prepared(job_id: int) -> Prepared | None:
    """What this worker keeps for a search, if anything (its latest run)."""
    with _prepared_lock:
        found = [p for (j, _), p in _prepared.items() if j == job_id]
    return found[-1] if found else None


def _done(counts: dict[tuple[int, str], int], fold: int) -> int:
    return sum(counts.get((fold, s), 0) for s in store.FINISHED)


def _record(session: Any, p: Prepared, pending: Pending, seq: int | None) -> bool:
    t = pending.trial
    return store.record(session, pending.trial_id, p.job_id, owner=pending.owner,
                        state=t.state, value=t.value, metrics=t.metrics, params=t.params,
                        now=utcnow(), seq=seq, evaluated=not pending.copied)  # fmt: skip


def _log_recorded(p: Prepared, pending: Pending, kept: bool) -> None:
    """Once the result's transaction has committed (a worker killed before that recorded
    nothing)."""
    number = pending.trial.number
    if kept:
        how = "copied" if pending.copied else "recorded"
        log.info("search %s fold %s trial %s %s by %s", p.job_id, pending.fold, number, how,
                 pending.owner)  # fmt: skip
    else:
        log.warning("search %s fold %s trial %s: lease lost, result dropped", p.job_id,
                    pending.fold, number)  # fmt: skip


def flush(p: Prepared) -> None:
    """Record the trial this worker evaluated last, if it is still unrecorded."""
    pending = p.pending
    if pending is not None:
        with session_scope() as session:
            kept = _record(session, p, pending, None)
        p.pending = None
        _log_recorded(p, pending, kept)


def take_trial(p: Prepared, owner: str, leases: Leases, *, coordinator: bool) -> str:
    """Record the trial evaluated last, then reserve, propose, evaluate (and keep to record)
    one more trial of search `p` (the protocol in the module docstring). TOOK / COPIED: one
    more trial; WAIT: nothing to propose while trials are out; DONE: the budget (trials or
    time) is spent and nothing is out; CLOSED: the search no longer runs (cancelled, finished,
    or, for a helper, coordinated by this very process). Call `flush` when done."""
    now = utcnow()
    pending = p.pending
    kept: bool | None = None
    with session_scope() as session:
        run = store.lock_run(session, p.job_id, now=now, take_seq=pending is not None)
        if pending is not None and run is not None:
            kept = _record(session, p, pending, run.seq)
        step = _reserve(session, p, run, owner, leases, now, coordinator=coordinator)
    p.pending = None  # committed
    if pending is not None and kept is not None:
        _log_recorded(p, pending, kept)
    if not isinstance(step, tuple):
        return step
    trial_id, fold, number = step
    proposer = p.proposers[fold]
    proposed = proposer.ask(number)  # from the history read under the lock, outside it
    known = proposer.known(number, proposed)
    if known is not None:  # scored before: recorded again, not evaluated again
        p.pending = Pending(trial_id, fold, owner, known, copied=True)
        return COPIED
    with lease_keeper.holding(trial_id, owner, leases):
        try:
            trial = p.runners[fold].evaluate(number, proposed)
        except Exception:
            log.exception("search %s trial %s could not be evaluated", p.job_id, number)
            trial = Trial(number, proposed, None, "failed")
    p.pending = Pending(trial_id, fold, owner, trial)
    return TOOK


def _reserve(
    session: Any,
    p: Prepared,
    run: store.RunState | None,
    owner: str,
    leases: Leases,
    now: datetime,
    *,
    coordinator: bool,
) -> str | tuple[int, int, int]:
    """Inside the run row's lock: bring the proposers up to date and insert the next trial
    as running, (id, fold, number); or say why there is none."""
    if run is None or run.job_state != "running" or run.cancel_requested:
        return CLOSED
    if not coordinator and run.job_owner == owner:
        return CLOSED
    lost = store.expire_lost(session, p.job_id, now=now)
    if lost:
        log.warning("search %s: %s trial(s) lost with their worker's lease", p.job_id, lost)
    for r in store.recorded_since(session, p.job_id, p.seen_seq):
        p.proposers[r.fold].add(Trial(r.number, r.params, r.value, r.state, r.metrics))
        p.seen_seq = r.seq
    counts = store.counts(session, p.job_id)
    out = sum(n for (_, state), n in counts.items() if state == store.RUNNING)
    fold = next((k for k in range(len(p.runners))
                 if _done(counts, k) + counts.get((k, store.RUNNING), 0) < p.spec.trials),
                None)  # fmt: skip
    if fold is None or now >= run.deadline:
        return WAIT if out else DONE
    number = sum(n for (f, _), n in counts.items() if f == fold)
    trial_id = store.insert_running(session, p.job_id, fold, number, owner=owner, now=now,
                                    lease_seconds=leases.seconds)  # fmt: skip
    return trial_id, fold, number


def _recorded_trials(job_id: int) -> tuple[list[list[Trial]], int, float]:
    """Recorded trials per fold (by number), how many were lost, seconds since the start."""
    with session_scope() as session:
        rows = store.finished(session, job_id)
        lost = store.counts(session, job_id)
        started = session.scalar(select(SearchRun.created_at).where(SearchRun.job_id == job_id))
    by_fold: dict[int, list[Trial]] = {}
    for r in rows:
        by_fold.setdefault(r.fold, []).append(Trial(r.number, r.params, r.value, r.state,
                                                    r.metrics))  # fmt: skip
    n_lost = sum(n for (_, state), n in lost.items() if state == store.LOST)
    seconds = (utcnow() - started).total_seconds() if started is not None else 0.0
    return [by_fold.get(k, []) for k in range(max(by_fold, default=-1) + 1)], n_lost, seconds


def search_outcome(p: Prepared) -> dict[str, Any]:
    """The search's result from its recorded trials (as `run_search` would give it)."""
    per_fold, lost, seconds = _recorded_trials(p.job_id)
    per_fold += [[] for _ in range(len(p.runners) - len(per_fold))]

    def fitted(trials: list[Trial]) -> dict[str, Any]:
        stopped = "trials" if len(trials) >= p.spec.trials else "time"
        return search_result(p.spec, trials, stopped, seconds)

    if p.folds is None:
        return {**fitted(per_fold[0]), "trials_lost": lost}
    result = walk_forward_result(p.spec, p.runner, p.folds, [fitted(t) for t in per_fold])
    return {**result, "seconds": round(seconds, 3), "trials_lost": lost}


class _Progress:
    """`job_progress` events with trials done and the best so far, at most once a second."""

    def __init__(self, ctx: Any, p: Prepared) -> None:
        self.ctx, self.p = ctx, p
        self.total = p.spec.trials * len(p.runners)
        self.last = 0.0

    def publish(self, *, final: dict[str, Any] | None = None) -> None:
        now = time.monotonic()
        if final is None and now - self.last < EVENT_EVERY_SECONDS:
            return
        self.last = now
        if final is None:
            done = sum(pr.recorded for pr in self.p.proposers)
            bests = [pr.best for pr in self.p.proposers if pr.best is not None]
            best = max(bests, key=lambda t: t.value or 0.0) if bests else None  # never None
            value = None if best is None else best.value
            params = None if best is None else best.params
        else:
            done = final["trials_done"]
            top = final.get("best") or {}
            value, params = top.get("value"), top.get("params")
        self.ctx.report_progress(done / self.total)
        publish_event(self.ctx.user_id, "job_progress", {
            "job_id": self.ctx.job_id, "kind": KIND, "state": "running",
            "progress": round(done / self.total, 4), "trials_done": done,
            "best_value": value, "best_params": params,
        })  # fmt: skip


def run_search_job(ctx: Any) -> dict[str, Any]:
    """Handler of job kind "search": coordinate the search, taking trials like any helper."""
    timeout = float(ctx.payload["timeout_seconds"])
    with session_scope() as session:
        started, _ = store.open_run(session, ctx.job_id, now=utcnow(), timeout_seconds=timeout)
    try:
        p = prepare(ctx.job_id, started, ctx.payload)
    except ExchangeUnavailable as exc:
        raise TransientJobError(str(exc)) from exc
    leases = Leases.from_settings()
    stop = throttled(ctx.cancelled, CANCEL_CHECK_SECONDS)
    progress = _Progress(ctx, p)
    with p.lock:
        try:
            while True:
                if stop():
                    raise JobCancelled()
                step = take_trial(p, ctx.owner, leases, coordinator=True)
                if step == CLOSED:
                    raise JobCancelled()  # cancelled, or no longer ours: the fence decides
                if step == DONE:
                    break
                progress.publish()
                if step == WAIT:
                    time.sleep(WAIT_SECONDS)
        finally:
            flush(p)
    result = {"summary": summary(p.spec, p.data), **search_outcome(p)}
    progress.publish(final=result)
    return result


def help_searches(owner: str, *, seconds: float = HELP_SECONDS) -> int:
    """Take trials of searches other workers coordinate, for up to `seconds`; how many were
    taken. Postgres only: on SQLite a search runs in its coordinator's process."""
    with session_scope() as session:
        if session.get_bind().dialect.name != "postgresql":
            return 0
        ids = store.open_searches(session, kind=KIND, exclude_owner=owner)
    if not ids:
        return 0
    leases = Leases.from_settings()
    deadline = time.monotonic() + seconds
    taken = 0
    for job_id, started in ids:
        with _prepared_lock:
            p = _prepared.get((job_id, started))
        if p is None:
            with session_scope() as session:
                payload = session.scalar(select(Job.payload).where(Job.id == job_id))
            if payload is None:
                continue
            try:
                p = prepare(job_id, started, dict(payload))
            except Exception as exc:  # the coordinator reports what is wrong with the search
                log.info("not helping search %s: %s", job_id, type(exc).__name__)
                continue
        with p.lock:
            try:
                while time.monotonic() < deadline:
                    step = take_trial(p, owner, leases, coordinator=False)
                    if step not in (TOOK, COPIED):
                        break
                    taken += 1
            finally:
                flush(p)
        if time.monotonic() >= deadline:
            break
    return taken
