"""Every model, imported in one place so Alembic and the tests see the complete metadata.

Each feature keeps its tables in its own module; import classes from that module directly.
"""

from app.store.models import (  # noqa: F401
    accounts,
    analysis,
    events,
    ledger,
    notifications,
    safety,
    searches,
    signals,
    strategies,
    trading,
)
from app.store.models.core import Bot, Job, SystemState, User

__all__ = ["Bot", "Job", "SystemState", "User"]
