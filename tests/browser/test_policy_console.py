"""The policy console in real headless Chromium (Debian's), driven by Python playwright:
edit with inline validation, propose, diff, shadow and its report, approve (by someone else),
activate, roll back. Screenshots are kept in the test's tmp dir."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from gateway.app import create_app
from gateway.keys import ApiKeyStore, Role
from gateway.settings import Settings
from tests.e2e.conftest import RunningGateway, make_key
from tests.serving import serve_in_thread

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
if not os.environ.get("CI"):
    pytest.importorskip("playwright.sync_api")
from playwright.sync_api import Page, expect, sync_playwright  # noqa: E402

from tests.policy_texts import term_seed  # noqa: E402

SEED = term_seed("console")
CANDIDATE = SEED.replace(
    "illicit, threshold: 0.5, action: allow", "illicit, threshold: 0.5, action: block"
)
BROKEN = SEED.replace("sexual, threshold: 0.5", "sexul, threshold: 0.5")


@pytest.fixture(scope="module")
def console_gateway(
    clean_redis: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningGateway]:
    data_dir = tmp_path_factory.mktemp("genguard-console")
    (data_dir / "seed.yaml").write_text(SEED)
    settings = Settings(redis_url=clean_redis, data_dir=data_dir, bootstrap_key=make_key(),
                        policy_file=data_dir / "seed.yaml")  # fmt: skip
    with serve_in_thread(create_app(settings)) as base_url:
        assert settings.bootstrap_key is not None
        yield RunningGateway(base_url, settings.bootstrap_key.get_secret_value(), settings,
                             clean_redis)  # fmt: skip


def create_key(redis_url: str, roles: set[Role]) -> str:
    async def create() -> str:
        client = aioredis.Redis.from_url(redis_url)
        key, _ = await ApiKeyStore(client).create(tenant="default", roles=frozenset(roles))
        await client.aclose()
        return key

    return asyncio.run(create())


def sign_in(page: Page, base_url: str, key: str) -> None:
    page.goto(f"{base_url}/console/policies")
    page.fill("#api-key", key)
    page.click("#login-form button")
    expect(page.locator("#app")).to_be_visible()


def row(page: Page, number: int) -> object:
    return page.locator(f"#versions tbody tr[data-version='{number}']")


def test_policy_console_edit_propose_shadow_approve_activate_rollback(
    console_gateway: RunningGateway, tmp_path: Path
) -> None:
    gw = console_gateway
    editor = create_key(gw.redis_url, {Role.POLICY_EDITOR, Role.POLICY_APPROVER})
    approver = create_key(gw.redis_url, {Role.POLICY_APPROVER})
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=CHROMIUM, args=FLAGS,
            viewport={"width": 1400, "height": 1200},
        )  # fmt: skip
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        sign_in(page, gw.base_url, editor)
        v1 = page.locator("#versions tbody tr[data-version='1']")
        expect(v1).to_contain_text("active")
        expect(page.locator("#yaml")).to_have_value(SEED)

        # inline validation while typing: line numbers and a suggestion
        page.fill("#yaml", BROKEN)
        issue = page.locator("#issues li").first
        expect(issue).to_contain_text("line 8")
        expect(issue).to_contain_text("did you mean 'sexual'?")
        page.screenshot(path=str(tmp_path / "1-inline-validation.png"), full_page=True)

        page.fill("#yaml", CANDIDATE)
        expect(page.locator("#issues li.ok")).to_contain_text("valid")
        page.click("#diff-edit")
        expect(page.locator("#diff")).to_contain_text("prompt.rules[prompt-illicit].action")
        page.fill("#reason", "block lighthouses")
        page.click("#propose")
        expect(page.locator("#status")).to_contain_text("proposed v2")
        v2 = page.locator("#versions tbody tr[data-version='2']")
        expect(v2).to_contain_text("proposed")

        # shadow on live traffic, then its report
        v2.locator("button[data-action=shadow]").click()
        expect(v2).to_contain_text("shadow")
        gw.client().images.generate(prompt="a lighthouse", size="256x256",
                                    response_format="b64_json")  # fmt: skip
        v2.locator("button[data-action=shadow-report]").click()
        expect(page.locator("#report-summary")).to_contain_text("allow→block")
        expect(page.locator("#report-examples tbody")).to_contain_text("a lighthouse")
        v2.locator("button[data-action=dry-run]").click()
        expect(page.locator("#report-title")).to_contain_text("Dry-run of v2")

        # the author cannot approve; another approver can
        v2.locator("button[data-action=approve]").click()
        expect(page.locator("#status")).to_contain_text("cannot approve it")
        page.click("#logout")
        sign_in(page, gw.base_url, approver)
        v2 = page.locator("#versions tbody tr[data-version='2']")
        v2.locator("button[data-action=approve]").click()
        expect(v2).to_contain_text("approved")
        v2.locator("button[data-action=activate]").click()
        expect(page.locator("#active-info")).to_have_text("active: v2")
        page.screenshot(path=str(tmp_path / "2-activated.png"), full_page=True)

        page.click("#rollback")
        expect(page.locator("#active-info")).to_contain_text("active: v1")
        expect(page.locator("#status")).to_contain_text("rolled back to v1")
        page.screenshot(path=str(tmp_path / "3-rolled-back.png"), full_page=True)
        browser.close()
    assert errors == []
    print(f"screenshots: {tmp_path}")
