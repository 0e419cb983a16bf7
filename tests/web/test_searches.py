"""A parameter search from the dashboard: the form, progress, the best parameters, the trials,
the walk-forward folds with their verdict, and a paper bot made from the result."""

from __future__ import annotations

from typing import Any

from tests.web.conftest import Server, axe_violations, screenshot, sign_in


def _search_form(open_page: Any, server: Server) -> tuple[Any, str]:
    """A new user's search form, SMA crossover with fast 5-8 and slow 20-24; (page, token)."""
    email, token = server.register()
    page = open_page()
    sign_in(page, email, then="/bots")
    page.goto("/searches")
    page.wait_for_selector("body[data-loaded=true]")
    page.select_option("#strategy", "sma_crossover")
    for field, value in (("fast-low", "5"), ("fast-high", "8"), ("slow-low", "20"),
                         ("slow-high", "24")):  # fmt: skip
        page.fill(f"#range-{field}", value)
    return page, token


def test_run_a_walk_forward_search_and_make_a_bot(open_page: Any, server: Server) -> None:
    page, token = _search_form(open_page, server)
    page.select_option("#symbol", "ETH/BTC")
    page.select_option("#objective", "profit")  # Sharpe needs 14 days; short folds have fewer
    page.fill("#trials", "4")
    page.fill("#folds", "2")
    page.click("#search-form button[type=submit]")
    page.wait_for_url("**/searches/*")
    page.locator("#result").wait_for(state="visible", timeout=120_000)
    assert page.locator("#state").inner_text() == "succeeded"
    best = page.locator("#best").inner_text()
    assert "fast" in best and "slow" in best
    assert page.locator("#folds tbody tr").count() == 2
    verdict = page.locator("#verdict")
    search_id = page.url.rsplit("/", 1)[-1]
    wf = server.api("GET", f"/api/searches/{search_id}", token).json()["result"]["walk_forward"]
    assert verdict.inner_text().lower() == wf["verdict"]  # the sentence, said once
    assert verdict.inner_text().count("out of sample") == 1
    assert ("holds" if wf["holds"] else "fails") in verdict.get_attribute("class")
    for value in page.locator("#trials tbody td.num, #best dd").all_inner_texts():
        assert not value.startswith("-0.0000"), value
    assert axe_violations(page) == []
    screenshot(page, "search-walk-forward")

    page.click("#make-bot")
    page.locator("dialog.confirm button[value=yes]").click()
    page.wait_for_url("**/bots/*")
    page.goto("/searches")
    page.wait_for_selector("body[data-loaded=true]")
    assert page.locator("#searches tbody tr").first.locator(".badge").inner_text() == "succeeded"


def test_a_bad_range_is_shown_next_to_the_form(open_page: Any, server: Server) -> None:
    email, token = server.register()
    page = open_page(width=390, height=844)
    sign_in(page, email, then="/bots")
    page.goto("/searches")
    page.wait_for_selector("body[data-loaded=true]")
    page.select_option("#strategy", "sma_crossover")
    page.fill("#range-fast-low", "30")
    page.fill("#range-fast-high", "5")  # low above high
    page.click("#search-form button[type=submit]")
    problem = page.locator("#search-form .form-error, #search-form .field-error:not([hidden])")
    problem.first.wait_for(state="visible")
    assert page.url == server.base + "/searches"  # nothing was started
    assert server.api("GET", "/api/searches", token).json()["total"] == 0
    assert axe_violations(page) == []


def test_search_several_pairs_and_make_a_bot_on_one(open_page: Any, server: Server) -> None:
    page, token = _search_form(open_page, server)
    page.select_option("#symbol", ["ETH/BTC", "LTC/BTC"])
    page.fill("#max-open-trades", "1")
    page.select_option("#objective", "profit")
    page.fill("#trials", "3")
    page.click("#search-form button[type=submit]")
    page.wait_for_url("**/searches/*")
    page.locator("#result").wait_for(state="visible", timeout=120_000)
    search_id = page.url.rsplit("/", 1)[-1]
    job = server.api("GET", f"/api/searches/{search_id}", token).json()
    assert job["payload"]["backtest"]["symbols"] == ["ETH/BTC", "LTC/BTC"]
    assert job["payload"]["backtest"]["max_open_trades"] == 1
    assert "ETH/BTC, LTC/BTC" in page.locator("#best").inner_text()
    page.select_option("#bot-pair", "LTC/BTC")
    assert axe_violations(page) == []
    page.click("#make-bot")
    page.locator("dialog.confirm button[value=yes]").click()
    page.wait_for_url("**/bots/*")
    bot = server.api("GET", f"/api/bots/{page.url.rsplit('/', 1)[-1]}", token).json()
    assert bot["symbol"] == "LTC/BTC"
    assert bot["strategy_params"] == job["result"]["best"]["params"]
    page.goto("/searches")
    page.wait_for_selector("body[data-loaded=true]")
    assert "ETH/BTC, LTC/BTC" in page.locator("#searches tbody tr").first.inner_text()
