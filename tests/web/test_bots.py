"""A bot's life in the browser: create it from the form (parameters generated from the
strategy's schema, the API's messages next to the fields), start it, and watch its first
trade, its chart markers and the bots table change without reloading; another user gets 404."""

from __future__ import annotations

import re
from typing import Any

from tests.web.conftest import Server, axe_violations, screenshot, sign_in

PROTECTIONS = ("max_drawdown", "daily_loss_limit", "max_losing_streak", "stoploss_guard_trades")


def _create_bot_in_form(page: Any, name: str) -> int:
    page.goto("/bots/new")
    page.wait_for_selector("body[data-loaded=true]")
    page.fill("#name", name)
    page.select_option("#symbol", "ETH/BTC")
    page.select_option("#timeframe", "5m")
    page.select_option("#strategy", "sma_crossover")
    # the parameters form comes from the schema: its bounds are the schema's
    assert page.get_attribute("#param-fast", "min") == "2"
    page.fill("#param-fast", "2")
    page.fill("#param-slow", "3")
    page.select_option("#sizing-mode", "percent")
    page.fill("#sizing-percent", "10")
    for key in PROTECTIONS:
        page.fill(f"#prot-{key}", "off")

    page.fill("#capital", "-1")  # the API's message lands next to the field
    page.click("button[type=submit]")
    capital_error = page.locator('[data-error-for="capital"]')
    capital_error.wait_for(state="visible")
    assert "greater than 0" in capital_error.inner_text()
    assert axe_violations(page) == []
    screenshot(page, "bot-form-error")

    page.fill("#capital", "1")
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/bots/\d+$"))
    return int(page.url.rstrip("/").rsplit("/", 1)[1])


def test_create_start_and_watch_the_first_trade(open_page: Any, server: Server) -> None:
    email, _token = server.register()
    page = open_page()
    sign_in(page, email)
    bot_id = _create_bot_in_form(page, "browser bot")
    page.wait_for_selector("body[data-loaded=true]")
    assert page.locator("#bot-status").inner_text() == "created"
    assert page.locator("#price-chart canvas").count() > 0  # candles drawn

    table = open_page()  # the same user's bots table in another tab
    sign_in(table, email)
    row = table.locator(f'tr[data-bot-id="{bot_id}"]')
    assert row.locator('[data-col="status"]').inner_text().startswith("created")

    page.evaluate("window.__sameDocument = true")
    page.click('#controls [data-action="start"]')
    page.locator("#bot-status", has_text="running").wait_for()
    # the first fill arrives through the event stream: no reload, no click
    page.wait_for_function("() => Number(document.body.dataset.trades || 0) > 0", timeout=90_000)
    page.wait_for_function("() => Number(document.body.dataset.markers || 0) > 0")
    assert page.evaluate("window.__sameDocument") is True
    first_fill = page.locator("#trades tbody tr").first.locator("td")
    assert first_fill.nth(1).inner_text() in ("buy", "sell")
    assert "none yet" not in page.locator("#position").inner_text()

    table.locator(f'tr[data-bot-id="{bot_id}"] [data-col="status"]', has_text="running").wait_for()
    assert axe_violations(page) == []
    assert axe_violations(table) == []
    screenshot(page, "bot")
    screenshot(table, "bots")

    # stopping asks first and names what happens
    page.click('#controls [data-action="stop"]')
    dialog = page.locator("dialog.confirm")
    assert "position stays open" in dialog.inner_text()
    dialog.locator("button", has_text="Cancel").click()
    assert page.locator("#bot-status").inner_text() == "running"

    # another user cannot see it by URL
    other_email, _ = server.register()
    intruder = open_page(width=390)
    sign_in(intruder, other_email)
    response = intruder.goto(f"/bots/{bot_id}")
    assert response.status == 404
    assert f"bot {bot_id} not found" in intruder.locator("h1").inner_text()
    assert "browser bot" not in intruder.content()
    screenshot(intruder, "bot-not-found")
