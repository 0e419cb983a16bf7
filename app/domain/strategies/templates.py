"""The shipped strategy documents: readable examples a user can copy, and what the old
built-in names (sma_crossover, ...) resolve to."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from app.domain.strategies.doc_model import StrategyDocument, parse_document

__all__ = ["template_document", "template_names"]

_DIR = Path(__file__).resolve().parent / "templates"


@lru_cache(maxsize=1)
def _documents() -> dict[str, StrategyDocument]:
    docs = {}
    for path in sorted(_DIR.glob("*.json")):
        doc = parse_document(json.loads(path.read_text(encoding="utf-8")))
        docs[doc.name] = doc
    return docs


def template_names() -> list[str]:
    return sorted(_documents())


def template_document(name: str) -> StrategyDocument | None:
    """The template called `name`, or None."""
    return _documents().get(name)
