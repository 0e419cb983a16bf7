"""Which handler runs each kind of background job: a table of callables, read by the runner.

A worker claims only the kinds listed here, so a kind without a handler is never taken.
The contract a handler implements (context, results writer, transient errors) lives in
`app.store.job_contract`, below the services that implement it.
"""

from __future__ import annotations

from app.services import analysis, backtests, candle_downloads, search_workers, searches
from app.store.job_contract import Registration

JOB_HANDLERS: dict[str, Registration] = {
    analysis.KIND: Registration(
        analysis.KIND, analysis.run_analysis_job, store=analysis.store_analysis_results
    ),
    backtests.KIND: Registration(backtests.KIND, backtests.run_backtest_job),
    candle_downloads.KIND: Registration(candle_downloads.KIND, candle_downloads.run_download_job),
    searches.KIND: Registration(searches.KIND, search_workers.run_search_job),
}


def get_handler(kind: str) -> Registration | None:
    return JOB_HANDLERS.get(kind)


def registered_kinds() -> list[str]:
    return sorted(JOB_HANDLERS)
