"""fetch_page: the page and the total in one query, and the total still right past the end."""

from __future__ import annotations

from typing import Any

from app.store.db import session_scope
from app.store.models import User
from app.store.paging import fetch_page


def test_page_total_and_a_page_past_the_end(make_user: Any, count_queries: Any) -> None:
    ids = sorted(make_user().id for _ in range(5))
    with session_scope() as s:
        with count_queries() as q:
            rows, total = fetch_page(s, User, [], [User.id], limit=2, offset=2)
        assert [u.id for u in rows] == ids[2:4] and total == 5 and len(q) == 1
        rows, total = fetch_page(s, User, [User.id > ids[0]], [User.id], limit=10, offset=0)
        assert len(rows) == 4 and total == 4
        assert fetch_page(s, User, [], [User.id], limit=2, offset=50) == ([], 5)
        assert fetch_page(s, User, [User.id < 0], [User.id], limit=2, offset=0) == ([], 0)
