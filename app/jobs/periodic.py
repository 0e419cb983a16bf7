"""The periodic background jobs, declared as data: a table of (name, callable, interval).

Every worker schedules all of them; each job claims its own work (leases, `SKIP LOCKED`,
advisory locks), so running them in many processes at once is safe and spreads the load.
A job takes no arguments and never raises (each `run` catches and logs its own failures).
"""

from __future__ import annotations

from app.jobs import bot_ticks, cleanup, job_runner, notifications, search_trials, self_healing
from app.jobs.scheduler import PeriodicJob

PERIODIC_JOBS: tuple[PeriodicJob, ...] = (
    PeriodicJob("bot_ticks", bot_ticks.run, 1.0, flag="trading_enabled"),
    PeriodicJob("background_jobs", job_runner.run, 1.0),
    PeriodicJob("search_trials", search_trials.run, 1.0),
    PeriodicJob("notifications", notifications.run, 1.0),
    PeriodicJob("self_healing", self_healing.run, 15.0, flag="self_healing_enabled"),
    PeriodicJob("cleanup", cleanup.run, 600.0),
)
