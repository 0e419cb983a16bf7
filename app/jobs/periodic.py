"""The periodic background jobs, declared as data.

Every worker schedules all of them; each job claims its own work (leases, `SKIP LOCKED`,
advisory locks), so running them in many processes at once is safe and spreads the load.
A target is "module:function" and takes no arguments; it is imported when first run.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PeriodicJob:
    name: str
    target: str
    seconds: float
    flag: str | None = None  # a boolean Settings field that must be true


PERIODIC_JOBS: tuple[PeriodicJob, ...] = (
    PeriodicJob("bot_ticks", "app.jobs.bot_ticks:run", 1.0, flag="trading_enabled"),
    PeriodicJob("background_jobs", "app.jobs.job_runner:run", 1.0),
    PeriodicJob("self_healing", "app.jobs.self_healing:run", 15.0, flag="self_healing_enabled"),
    PeriodicJob("cleanup", "app.jobs.cleanup:run", 600.0),
)
