"""Tagged entries over HTTP: a document's bad entry list answers 422 with its JSON path (a
backtest of a tagged document is in test_backtests_pairs.py)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.domain.test_entry_tags import CROSS, TAGGED


@pytest.fixture
def owner(make_user: Any, auth_headers: Any) -> dict[str, str]:
    return auth_headers(make_user())


@pytest.mark.parametrize(
    ("entry", "path"),
    [
        ([{"tag": "a", "when": CROSS}, {"tag": "a", "when": CROSS}], "$.entry"),
        ([{"tag": "-bad", "when": CROSS}], "$.entry[0].tag"),
        ([{"tag": "ok", "when": {"series": "close"}}], "$.entry[0].when"),
        ([{"when": CROSS}], "$.entry[0].tag"),
    ],
)
def test_bad_entry_lists_answer_422_with_their_path(client, owner, entry, path) -> None:  # type: ignore[no-untyped-def]
    doc = copy.deepcopy(TAGGED)
    doc["entry"] = entry
    for url in ("/api/strategies", "/api/strategies/validate"):
        r = client.post(url, json={"document": doc}, headers=owner)
        assert r.status_code == 422, r.get_json()
        error = r.get_json()["error"]
        assert error["code"] == "invalid_strategy_document"
        assert error["details"][0]["path"] == path, error
