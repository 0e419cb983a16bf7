"""The strategies page in a real browser: copy a template into a document, see a fault with
its JSON path while typing (nothing saved), fix it and see the warm-up and parameters, save
version 1 then 2, reopen version 1 and save it as 3, delete behind a confirmation; by keyboard
and at phone width."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import expect

from tests.web.conftest import Server, axe_violations, screenshot, sign_in


def _edit(page: Any, old: str, new: str) -> None:
    text = page.input_value("#doc-text")
    assert old in text
    page.fill("#doc-text", text.replace(old, new, 1))


def test_write_check_save_and_delete_a_strategy_document(open_page: Any, server: Server) -> None:
    email, token = server.register()
    page = open_page(width=390, height=844)
    sign_in(page, email)
    page.goto("/strategies")
    page.wait_for_selector("body[data-loaded=true]")
    assert page.locator("#no-documents").is_visible()

    # copy a template by keyboard: focus the picker, choose, press the button with Enter
    page.select_option("#copy-template", "sma_crossover")
    page.focus("#copy")
    page.keyboard.press("Enter")
    page.locator("#doc-summary").wait_for(state="visible")
    assert page.locator("#warmup").inner_text() != ""
    assert page.evaluate("document.activeElement.id") == "doc-text"

    # break it: the fault and its path appear next to the editor, and nothing is saved
    _edit(page, '"ta": "SMA"', '"ta": "NOT_A_FUNCTION"')
    page.locator("#doc-error").wait_for(state="visible")
    assert "$.indicators.fast_ma.ta" in page.locator("#doc-error-paths").inner_text()
    assert page.locator("#doc-summary").is_hidden()
    assert page.get_attribute("#doc-text", "aria-invalid") == "true"
    assert server.api("GET", "/api/strategies/documents", token).json()["total"] == 0
    assert axe_violations(page) == []
    screenshot(page, "strategies-fault")

    # fix it (and change a default): the warm-up, parameters and series come back
    _edit(page, '"ta": "NOT_A_FUNCTION"', '"ta": "SMA"')
    _edit(page, '"default": 30', '"default": 40')
    page.locator("#doc-summary").wait_for(state="visible")
    assert page.locator("#doc-error").is_hidden()
    expect(page.locator("#warmup")).to_have_text("40 candles")  # the slow SMA at its new default
    params = page.locator("#doc-params tbody").inner_text()
    assert "fast" in params and "slow" in params and "from 3 to 1000" in params
    assert "fast_ma" in page.locator("#doc-series").inner_text()

    page.click("#save")
    row = page.locator("#documents tbody tr")
    row.first.wait_for()
    assert row.count() == 1
    assert "sma_crossover" in row.first.inner_text()
    assert row.first.locator("td.num").inner_text() == "1"
    assert "version 1" in page.locator("#save-status").inner_text()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert axe_violations(page) == []
    screenshot(page, "strategies-saved")

    _edit(page, '"default": 10', '"default": 12')
    page.click("#save")
    expect(page.locator("#documents tbody td.num").first).to_have_text("2")
    assert "version 2" in page.locator("#save-status").inner_text()
    saved = server.api("GET", "/api/strategies/documents", token).json()["items"]
    doc = server.api("GET", f"/api/strategies/{saved[0]['id']}", token).json()
    assert doc["version"] == 2 and doc["document"]["parameters"]["fast"]["default"] == 12
    first = server.api("GET", f"/api/strategies/{saved[0]['id']}/versions/1", token).json()
    assert first["document"]["parameters"]["fast"]["default"] == 10

    # reopen it from the list, then delete: cancelling keeps it, confirming removes it
    page.reload()
    page.wait_for_selector("body[data-loaded=true]")
    page.locator("#documents tbody button").first.click()
    expect(page.locator("#doc-text")).to_have_value(re.compile(r'"default": 12'))

    # browse back to version 1 and save it again: it becomes version 3, version 2 stays
    page.select_option("#doc-version", "1")
    expect(page.locator("#doc-text")).to_have_value(re.compile(r'"default": 10'))
    expect(page.locator("#version-hint")).to_contain_text("saving it makes version 3")
    page.click("#save")
    expect(page.locator("#documents tbody td.num").first).to_have_text("3")
    latest = server.api("GET", f"/api/strategies/{saved[0]['id']}", token).json()
    assert latest["version"] == 3 and latest["document"]["parameters"]["fast"]["default"] == 10
    second = server.api("GET", f"/api/strategies/{saved[0]['id']}/versions/2", token).json()
    assert second["document"]["parameters"]["fast"]["default"] == 12
    assert page.locator("#doc-version").input_value() == "3"
    page.click("#delete")
    page.click("dialog.confirm button[value=no]")
    assert page.locator("#documents tbody tr").count() == 1
    page.click("#delete")
    page.click("dialog.confirm button[value=yes]")
    page.locator("#no-documents").wait_for(state="visible")
    assert server.api("GET", "/api/strategies/documents", token).json()["total"] == 0
