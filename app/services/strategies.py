"""Users' strategy documents: save (each save an immutable version), read, delete, check
without saving; and what a bot or a backtest runs - a template by name, or one version of the
user's own document with parameter values checked against it.

A document of another user answers 404, like one that does not exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.domain.candles import Candles
from app.domain.strategies import Strategy, get_strategy
from app.domain.strategies.doc_model import (
    TIMEFRAME_SECONDS,
    StrategyDocument,
    parse_document,
    parse_document_text,
)
from app.domain.strategies.doc_strategy import DocumentStrategy
from app.engine.strategy_source import document_limits, document_strategy, version_body
from app.errors import NotFound, ValidationFailed
from app.store.base import utcnow
from app.store.models.strategies import StrategyDocument as DocumentRow
from app.store.models.strategies import StrategyVersion
from app.store.paging import fetch_page

__all__ = [
    "StrategyChoice",
    "check_document",
    "create_document",
    "delete_document",
    "get_document",
    "list_documents",
    "resolve_strategy",
    "update_document",
    "validate_document",
]


def _not_found(document_id: int) -> NotFound:
    return NotFound(f"strategy {document_id} not found", code="strategy_not_found")


def check_document(source: Any, timeframe: str | None = None) -> DocumentStrategy:
    """The parsed, checked document (JSON object, or JSON/YAML text) compiled with its
    defaults; ValidationFailed (422) naming the JSON path of every fault."""
    limits = document_limits()
    if isinstance(source, str | bytes):
        doc = parse_document_text(source, limits)
    else:
        doc = parse_document(source, limits)
    if timeframe is not None and timeframe not in TIMEFRAME_SECONDS:
        raise ValidationFailed(
            f"unknown timeframe {timeframe!r}",
            code="unknown_timeframe",
            details=[{"loc": ["body", "timeframe"], "msg": "unknown timeframe"}],
        )
    return DocumentStrategy(doc, timeframe=timeframe, limits=limits)


def _body(doc: StrategyDocument) -> dict[str, Any]:
    return doc.model_dump(mode="json", exclude_none=True)


def _row(session: Session, user_id: int, document_id: int, *, lock: bool = False) -> DocumentRow:
    stmt = select(DocumentRow).where(
        DocumentRow.id == document_id,
        DocumentRow.user_id == user_id,
        DocumentRow.deleted_at.is_(None),
    )
    if lock:
        stmt = stmt.with_for_update()
    row = session.scalars(stmt).one_or_none()
    if row is None:
        raise _not_found(document_id)
    return row


def create_document(session: Session, user_id: int, source: Any) -> tuple[DocumentRow, int]:
    """A new document at version 1."""
    strategy = check_document(source)
    row = DocumentRow(user_id=user_id, name=strategy.doc.name, latest_version=1)
    session.add(row)
    session.flush()
    session.add(StrategyVersion(document_id=row.id, version=1, body=_body(strategy.doc)))
    session.flush()
    return row, 1


def update_document(
    session: Session, user_id: int, document_id: int, source: Any
) -> tuple[DocumentRow, int]:
    """A new version; the earlier ones stay as they were (bots keep running theirs)."""
    strategy = check_document(source)
    row = _row(session, user_id, document_id, lock=True)
    row.latest_version += 1
    row.name = strategy.doc.name
    row.updated_at = utcnow()
    session.add(StrategyVersion(document_id=row.id, version=row.latest_version,
                                body=_body(strategy.doc)))  # fmt: skip
    session.flush()
    return row, row.latest_version


def get_document(
    session: Session, user_id: int, document_id: int, version: int | None = None
) -> tuple[DocumentRow, int, dict[str, Any]]:
    """(row, version, body) of the user's document; the latest version unless given."""
    row = _row(session, user_id, document_id)
    number = row.latest_version if version is None else version
    if not 1 <= number <= row.latest_version:
        raise NotFound(f"strategy {document_id} has no version {number}",
                       code="strategy_version_not_found")  # fmt: skip
    return row, number, version_body(session, row.id, number)


def list_documents(
    session: Session, user_id: int, *, limit: int = 50, offset: int = 0
) -> tuple[list[DocumentRow], int]:
    where = [DocumentRow.user_id == user_id, DocumentRow.deleted_at.is_(None)]
    return fetch_page(session, DocumentRow, where, [DocumentRow.id.desc()],
                      limit=limit, offset=offset)  # fmt: skip


def delete_document(session: Session, user_id: int, document_id: int) -> None:
    """Hidden from its owner from now on; bots and results that ran a version keep it."""
    row = _row(session, user_id, document_id, lock=True)
    row.deleted_at = utcnow()
    session.flush()


def validate_document(source: Any, timeframe: str | None = None) -> dict[str, Any]:
    """What a document would do, without saving it: its parameters, warm-up and lookback at
    the defaults, the series (named indicators) it computes, and its exits."""
    strategy = check_document(source, timeframe)
    params = strategy.default_params()
    program = strategy.program(params)
    probe = Candles(*(np.empty(0, dtype=t) for t in (np.int64, *[np.float64] * 5)))
    strategy.signals(probe, params)  # evaluation itself must not fail on an empty series
    return {
        "name": strategy.doc.name,
        "timeframe": timeframe or strategy.doc.timeframe,
        "parameters": {
            name: spec.model_dump(mode="json", exclude_none=True)
            for name, spec in strategy.doc.parameters.items()
        },
        "default_params": params.model_dump(mode="json"),
        "params_schema": strategy.params_json_schema(),
        "warmup": program.warmup,
        "lookback": program.lookback,
        "series": [{"name": n, "warmup": w} for n, w in program.series.items()],
        "exits": program.exits.to_dict(),
        "document": _body(strategy.doc),
    }


@dataclass(frozen=True)
class StrategyChoice:
    """What a bot or a backtest runs: the strategy, its checked values, and its source."""

    strategy: Strategy[Any]
    params: dict[str, Any]
    name: str
    document_id: int | None = None
    version: int | None = None


def resolve_strategy(
    session: Session,
    user_id: int,
    *,
    name: str | None,
    document_id: int | None,
    version: int | None,
    params: dict[str, Any] | None,
    timeframe: str | None,
) -> StrategyChoice:
    """A template by name, or the user's document (latest version unless given), with the
    parameter values validated against it (422 naming `strategy_params.<name>`)."""
    if document_id is not None:
        row, number, _ = get_document(session, user_id, document_id, version)
        strategy: Strategy[Any] = document_strategy(session, row.id, number, timeframe)
        label = row.name[:50]
    elif name:
        if version is not None:
            raise ValidationFailed(
                "strategy_version goes with strategy_document_id",
                details=[{"loc": ["body", "strategy_version"], "msg": "needs a document"}],
            )
        try:
            strategy = get_strategy(name, timeframe)
        except ValidationFailed as exc:
            if exc.code != "unknown_strategy":
                raise
            raise ValidationFailed(exc.message, code="unknown_strategy", details=[
                {"loc": ["body", "strategy"], "msg": exc.message}]) from None  # fmt: skip
        label, number = name, None
    else:
        raise ValidationFailed(
            "give a strategy (a template name) or a strategy_document_id",
            details=[{"loc": ["body", "strategy"], "msg": "required"}],
        )
    try:
        values = strategy.validate_params(params or {}).model_dump(mode="json")
    except ValidationFailed as exc:
        raise exc.under("strategy_params", "invalid_strategy_params") from None
    return StrategyChoice(strategy, values, label, document_id, number)
