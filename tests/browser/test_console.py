"""The audit explorer in real headless Chromium (Debian's), driven by Python playwright."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import openai
import pytest

from tests.e2e.conftest import RunningGateway, gateway, gateway_settings  # noqa: F401

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip

if not Path(CHROMIUM).exists() and not os.environ.get("CI"):
    pytest.skip(
        "Debian chromium is not installed (apt-get install -y chromium); CI installs it",
        allow_module_level=True,
    )
sync_api = pytest.importorskip("playwright.sync_api") if not os.environ.get("CI") else None
from playwright.sync_api import expect, sync_playwright  # noqa: E402


def test_explorer_signs_in_filters_and_shows_a_decision(
    gateway: RunningGateway,  # noqa: F811
    tmp_path: Path,
) -> None:
    client = gateway.client()
    client.moderations.create(input="a watercolour of a lighthouse")
    client.images.generate(
        prompt="a lighthouse at dawn", size="256x256", response_format="b64_json"
    )
    with pytest.raises(openai.BadRequestError):
        client.images.generate(prompt="a nude woman on a beach", response_format="b64_json")

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"),  # a fresh --user-data-dir
            executable_path=CHROMIUM,
            args=FLAGS,
            viewport={"width": 1280, "height": 1100},
        )
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(f"{gateway.base_url}/console")
        page.fill("#api-key", "gg_000000000000_" + "x" * 40)
        page.click("#login-form button")
        expect(page.locator("#login-error")).to_contain_text("unknown API key")

        page.fill("#api-key", gateway.admin_key)
        page.click("#login-form button")
        expect(page.locator("#explorer")).to_be_visible()
        expect(page.locator("#records tbody tr").first).to_be_visible()
        assert page.evaluate("sessionStorage.getItem('genguard.apiKey')") == gateway.admin_key

        page.select_option("select[name=decision]", "block")
        page.click("#filters button[type=submit]")
        rows = page.locator("#records tbody tr")
        expect(rows).to_have_count(1)
        expect(rows.first).to_contain_text("block")
        rows.first.click()
        detail = page.locator("#detail")
        expect(detail).to_contain_text("a nude woman on a beach")
        expect(detail).to_contain_text("sexual")
        expect(detail).to_contain_text("Outputs and provenance")
        expect(page.locator("#chart-decisions svg rect").first).to_be_attached()

        page.select_option("select[name=decision]", "")
        page.click("#filters button[type=submit]")
        page.locator("#records tbody tr", has_text="images.generations").filter(
            has_text="allow"
        ).first.click()
        expect(detail).to_contain_text("image/png")
        page.click("#verify")
        expect(page.locator("#status")).to_contain_text("intact")
        screenshot = tmp_path / "console.png"
        page.screenshot(path=str(screenshot), full_page=True)
        browser.close()
    assert screenshot.stat().st_size > 10_000
    assert errors == []
    print(f"console screenshot: {screenshot}")
