"""The strategy registry: what a bot or a backtest can run, with each one's parameter schema."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask
from pydantic import BaseModel

from app.api.jwt import auth_required
from app.api.validation import response
from app.domain.strategies import get_strategy, list_strategies
from app.errors import NotFound, ValidationFailed

bp = Blueprint("strategies", __name__)


class StrategyOut(BaseModel):
    name: str
    description: str
    params_schema: dict[str, Any]
    default_params: dict[str, Any]


class StrategyList(BaseModel):
    items: list[StrategyOut]


@bp.get("/api/strategies")
@auth_required
@response(StrategyList)
def strategies() -> Any:
    """Every strategy; `params_schema` is the JSON schema `strategy_params` must satisfy."""
    return StrategyList(items=[StrategyOut(**s.describe()) for s in list_strategies()])


@bp.get("/api/strategies/<name>")
@auth_required
@response(StrategyOut)
def strategy(name: str) -> Any:
    try:
        impl = get_strategy(name)
    except ValidationFailed as exc:
        raise NotFound(exc.message, code="unknown_strategy") from None
    return StrategyOut(**impl.describe())


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
