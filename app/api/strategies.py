"""Strategies: the templates a bot or a backtest can run by name, the TA-Lib functions a
document can use, and each user's own strategy documents (versioned; another user's answers
404). Thin: parse, call `app.services.strategies`, serialise."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Blueprint, Flask
from pydantic import Field, model_validator

from app.api.jwt import auth_required, current_user
from app.api.paging import OffsetQuery, offset_page
from app.api.request_context import db_session
from app.api.types import ApiModel
from app.api.validation import RequestModel, body, query, response
from app.domain.strategies import get_strategy, list_strategies
from app.domain.strategies import talib_catalog as ta
from app.domain.strategies.templates import template_document
from app.errors import NotFound, ValidationFailed
from app.services import strategies as service

bp = Blueprint("strategies", __name__)


class StrategyOut(ApiModel):
    name: str
    description: str
    params_schema: dict[str, Any]
    default_params: dict[str, Any]
    document: dict[str, Any] | None = Field(
        None, description="the template's document: copy it to start a strategy of your own"
    )


class StrategyList(ApiModel):
    items: list[StrategyOut]


class FunctionList(ApiModel):
    items: list[dict[str, Any]]


class DocumentIn(RequestModel):
    """A strategy document as a JSON object (`document`) or as JSON/YAML text (`text`)."""

    document: dict[str, Any] | None = None
    text: str | None = Field(None, max_length=200_000)

    @model_validator(mode="after")
    def _one(self) -> DocumentIn:
        if (self.document is None) == (self.text is None):
            raise ValueError("give exactly one of document (an object) or text (JSON or YAML)")
        return self

    @property
    def source(self) -> Any:
        return self.document if self.document is not None else self.text


class ValidateIn(DocumentIn):
    timeframe: str | None = Field(None, max_length=8, description="the candles it would run on")


class DocumentOut(ApiModel):
    id: int
    name: str
    version: int
    latest_version: int
    document: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class DocumentSummary(ApiModel):
    id: int
    name: str
    latest_version: int
    created_at: datetime
    updated_at: datetime


class DocumentPage(ApiModel):
    items: list[DocumentSummary]
    total: int
    limit: int
    offset: int


class DocumentListQuery(OffsetQuery):
    pass


class ValidationOut(ApiModel):
    name: str
    timeframe: str | None
    parameters: dict[str, Any]
    default_params: dict[str, Any]
    params_schema: dict[str, Any]
    warmup: int
    lookback: int
    series: list[dict[str, Any]]
    exits: dict[str, Any]
    document: dict[str, Any]


def _describe(impl: Any) -> StrategyOut:
    """A strategy by name, with its template document (the built-ins have one too)."""
    out = impl.describe()
    if out.get("document") is None:
        doc = template_document(impl.name)
        out["document"] = None if doc is None else doc.model_dump(mode="json", exclude_none=True)
    return StrategyOut(**out)


def _out(row: Any, version: int, document: dict[str, Any]) -> DocumentOut:
    return DocumentOut(id=row.id, name=row.name, version=version,
                       latest_version=row.latest_version, document=document,
                       created_at=row.created_at, updated_at=row.updated_at)  # fmt: skip


@bp.get("/api/strategies")
@auth_required
@response(StrategyList)
def strategies() -> Any:
    """Every strategy a bot can run by name (built-ins and templates); `params_schema` is the
    JSON schema `strategy_params` must satisfy."""
    return StrategyList(items=[_describe(s) for s in list_strategies()])


@bp.get("/api/strategies/functions")
@auth_required
@response(FunctionList)
def functions() -> Any:
    """The TA-Lib functions a document can call, with inputs, parameters and outputs."""
    items = [info.describe() for n in ta.function_names() if (info := ta.function_info(n))]
    return FunctionList(items=items)


@bp.post("/api/strategies/validate")
@auth_required
@body(ValidateIn)
@response(ValidationOut)
def validate(body: ValidateIn) -> Any:
    """Check a document without saving it: 422 naming the JSON path of each fault, or its
    parameters, warm-up, lookback, the series it computes and its exits."""
    return ValidationOut(**service.validate_document(body.source, body.timeframe))


@bp.get("/api/strategies/documents")
@auth_required
@query(DocumentListQuery)
@response(DocumentPage)
def documents(query: DocumentListQuery) -> Any:
    """The caller's own strategy documents, newest first."""
    rows, total = service.list_documents(db_session(), current_user().id, limit=query.limit,
                                         offset=query.offset)  # fmt: skip
    items = [
        DocumentSummary(id=r.id, name=r.name, latest_version=r.latest_version,
                        created_at=r.created_at, updated_at=r.updated_at)  # fmt: skip
        for r in rows
    ]
    return offset_page(items, total, query)


@bp.post("/api/strategies")
@auth_required
@body(DocumentIn)
@response(DocumentOut, 201)
def create_document(body: DocumentIn) -> Any:
    """Save a new document (version 1)."""
    session = db_session()
    row, version = service.create_document(session, current_user().id, body.source)
    _, _, document = service.get_document(session, current_user().id, row.id, version)
    return _out(row, version, document)


@bp.get("/api/strategies/<int:strategy_id>")
@auth_required
@response(DocumentOut)
def get_document(strategy_id: int) -> Any:
    row, version, document = service.get_document(db_session(), current_user().id, strategy_id)
    return _out(row, version, document)


@bp.get("/api/strategies/<int:strategy_id>/versions/<int:version>")
@auth_required
@response(DocumentOut)
def get_version(strategy_id: int, version: int) -> Any:
    row, number, document = service.get_document(db_session(), current_user().id, strategy_id,
                                                 version)  # fmt: skip
    return _out(row, number, document)


@bp.put("/api/strategies/<int:strategy_id>")
@auth_required
@body(DocumentIn)
@response(DocumentOut)
def update_document(strategy_id: int, body: DocumentIn) -> Any:
    """Save a new version; bots keep running the version they were given."""
    session = db_session()
    row, version = service.update_document(session, current_user().id, strategy_id, body.source)
    _, _, document = service.get_document(session, current_user().id, row.id, version)
    return _out(row, version, document)


@bp.delete("/api/strategies/<int:strategy_id>")
@auth_required
def delete_document(strategy_id: int) -> Any:
    service.delete_document(db_session(), current_user().id, strategy_id)
    return "", 204


@bp.get("/api/strategies/<name>")
@auth_required
@response(StrategyOut)
def strategy(name: str) -> Any:
    try:
        impl = get_strategy(name)
    except ValidationFailed as exc:
        raise NotFound(exc.message, code="unknown_strategy") from None
    return _describe(impl)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
