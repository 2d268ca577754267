"""The web console in a real browser: Debian's Chromium driven by Playwright, against the real
server. Every page is saved as a screenshot under test-artifacts/console/ and checked with
axe-core (vendored, run in the page): no serious or critical violations."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tencentcloud.lighthouse.v20200324 import models
from testkit import world
from testkit.server import Account, Server

from tests.support.access import allow, policy, sub_user

playwright = pytest.importorskip("playwright.sync_api")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(os.environ.get("LIGHTKEEPER_TEST_ARTIFACTS", "test-artifacts")) / "console"
AXE = Path(__file__).parent / "vendor" / "axe-core-4.14.1.min.js"
TIMEOUT = 20_000  # ms: a wait for the page, never a claim about speed


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        message = "Debian's chromium is not installed (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    with playwright.sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def console_server(make_server: Callable[..., Server]) -> Server:
    return make_server("--operation-seconds", "3", "--transition-seconds", "0")


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    # bypass_csp only so the test can inject axe-core; the page's own CSP is tested below.
    context = browser.new_context(bypass_csp=True, viewport={"width": 1280, "height": 800})
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    yield opened
    context.close()
    assert errors == [], errors  # no script error on any page


def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    page.add_script_tag(path=str(AXE))
    found = page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
        ".filter(v => ['serious', 'critical'].includes(v.impact))"
        ".map(v => v.id + ': ' + v.help + ' ' + v.nodes.map(n => n.target).join(' | '))"
    )
    assert found == [], f"{name}: {found}"


def sign_in(page: Any, server: Server, who: Account, keyboard: bool = False) -> None:
    page.goto(f"{server.url}/")  # a browser at the root is sent to the console
    if keyboard:  # the focus starts in the first field; Tab and Enter do the rest
        page.keyboard.type(who.secret_id)
        page.keyboard.press("Tab")
        page.keyboard.type(who.secret_key)
        page.keyboard.press("Enter")
    else:
        page.get_by_label("SecretId").fill(who.secret_id)
        page.get_by_label("SecretKey").fill(who.secret_key)
        page.get_by_role("button", name="Sign in").click()
    page.wait_for_selector("#region", timeout=TIMEOUT)  # the instances page, signed in
    page.wait_for_selector("#content > *", timeout=TIMEOUT)


def snapshot_row(page: Any, snapshot_id: str) -> Any:
    return page.locator(f"tr[data-snapshot='{snapshot_id}']")


def snapshot_ids(page: Any) -> list[str]:
    return [r.get_attribute("data-snapshot") for r in page.locator("tr[data-snapshot]").all()]


def quota_used(page: Any) -> int:
    page.wait_for_function("() => document.getElementById('quota').textContent !== ''")
    match = re.search(r"(\d+) of (\d+) used", page.inner_text("#quota"))
    assert match, page.inner_text("#quota")
    return int(match.group(1))


def test_root_manages_snapshots_end_to_end(
    console_server: Server, page: Any, tmp_path: Path
) -> None:
    server = console_server
    root = world.new_account(server, "console")
    instance_id = world.create_instance(server, root, "ap-guangzhou", "--name", "web-1")[
        "InstanceId"
    ]
    sign_in(page, server, root)
    assert page.url.endswith("/console/#/instances")
    row = page.locator(f"tr[data-instance='{instance_id}']")
    assert row.locator("td[data-field=state]").inner_text() == "RUNNING"
    shot(page, "instances")
    row.get_by_role("button", name="Start web-1").click()  # already RUNNING: the API says no
    alert = page.get_by_role("alert")
    alert.filter(has_text="UnsupportedOperation").wait_for(timeout=TIMEOUT)
    assert "RequestId" in alert.inner_text()
    row.get_by_role("button", name="Reboot web-1").click()  # allowed: it goes and comes back
    page.wait_for_function("() => document.getElementById('error').textContent === ''")
    page.wait_for_selector(
        f"tr[data-instance='{instance_id}'] td[data-field=state]:text-is('RUNNING')",
        timeout=TIMEOUT,
    )

    row.get_by_role("link", name="web-1").click()
    page.wait_for_selector("#create", timeout=TIMEOUT)
    assert quota_used(page) == 0
    page.get_by_label("Snapshot name (optional)").fill("before-upgrade")
    page.get_by_role("button", name="Create snapshot").click()
    page.wait_for_selector("tr[data-snapshot]", timeout=TIMEOUT)
    (first,) = snapshot_ids(page)
    bar = snapshot_row(page, first).locator("progress")
    page.wait_for_function(  # the bar moves while the state says CREATING...
        "id => { const r = document.querySelector(`tr[data-snapshot='${id}']`);"
        " return r && r.querySelector('[data-field=state]').textContent === 'CREATING'"
        " && Number(r.querySelector('progress').value) > 0 }",
        arg=first,
        timeout=TIMEOUT,
    )
    assert 0 < int(bar.get_attribute("value")) < 100
    shot(page, "snapshots-in-progress")
    page.set_viewport_size({"width": 390, "height": 844})  # a phone: nothing runs off-screen
    assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
    shot(page, "snapshots-phone")
    page.set_viewport_size({"width": 1280, "height": 800})
    state = snapshot_row(page, first).locator("td[data-field=state]")
    page.wait_for_function(  # ...and it ends NORMAL, with no reload
        "id => document.querySelector(`tr[data-snapshot='${id}'] [data-field=state]`)"
        ".textContent === 'NORMAL'",
        arg=first,
        timeout=TIMEOUT,
    )
    assert bar.get_attribute("value") == "100"
    assert state.inner_text() == "NORMAL"
    assert quota_used(page) == 1
    page.wait_for_function("() => document.getElementById('status').textContent === ''")

    # Rename inline.
    snapshot_row(page, first).get_by_role("button", name=f"Rename {first}").click()
    field = page.get_by_label(f"New name of {first}")
    field.fill("golden")
    field.press("Enter")
    page.wait_for_selector(f"tr[data-snapshot='{first}'] [data-field=name]:text-is('golden')")

    # Roll back the RUNNING instance through the dialog: it says the instance is forced off.
    snapshot_row(page, first).get_by_role("button", name=f"Roll back {first}").click()
    dialog = page.locator("dialog#confirm")
    assert dialog.is_visible()
    assert "forcibly shut down" in dialog.inner_text()
    shot(page, "rollback-dialog")
    dialog.get_by_role("button", name="Confirm").click()
    page.wait_for_selector("#instance-state:text-is('STOPPED')", timeout=TIMEOUT)
    page.wait_for_function(
        "id => document.querySelector(`tr[data-snapshot='${id}'] [data-field=operation]`)"
        ".textContent.includes('SUCCESS')",
        arg=first,
        timeout=TIMEOUT,
    )

    # Two more (the quota is 2 per instance: make room by a second instance), delete two.
    world.create_instance(server, root, "ap-guangzhou", "--name", "spare")
    page.get_by_role("button", name="Create snapshot").click()
    page.wait_for_function("() => document.querySelectorAll('tr[data-snapshot]').length === 2")
    page.wait_for_function(
        "() => [...document.querySelectorAll('[data-field=state]')]"
        ".every(c => c.textContent === 'NORMAL')",
        timeout=TIMEOUT,
    )
    assert quota_used(page) == 2
    for snapshot_id in snapshot_ids(page):
        page.get_by_label(f"Select {snapshot_id}").check()
    page.get_by_role("button", name="Delete selected").click()
    assert "Delete 2 snapshot(s)?" in dialog.inner_text()
    dialog.get_by_role("button", name="Confirm").click()
    page.wait_for_selector("text=No snapshots yet.", timeout=TIMEOUT)
    assert quota_used(page) == 0
    described = world.client(server, root).DescribeSnapshots(models.DescribeSnapshotsRequest())
    assert described.TotalCount == 0  # gone for the SDK too: the console is just a client


def test_a_sub_user_sees_its_denial_and_the_language_switch(
    console_server: Server, page: Any, tmp_path: Path
) -> None:
    server = console_server
    root = world.new_account(server, "console")
    instance_id = world.create_instance(server, root)["InstanceId"]
    reader = sub_user(
        server, root, "reader", policy(allow(["lighthouse:Describe*"], ["*"])), tmp_path
    )
    sign_in(page, server, reader, keyboard=True)
    assert page.locator(f"tr[data-instance='{instance_id}']").count() == 1  # it may look
    page.goto(f"{server.url}/console/#/instance/{instance_id}?region=ap-guangzhou")
    page.wait_for_selector("#create", timeout=TIMEOUT)
    page.get_by_role("button", name="Create snapshot").click()
    alert = page.get_by_role("alert")
    alert.filter(has_text="UnauthorizedOperation.NoPermission").wait_for(timeout=TIMEOUT)
    english = alert.inner_text()
    shot(page, "error-denied")

    page.get_by_label("Language").select_option("zh-CN")
    page.wait_for_selector("#snapshots-tab:text-is('快照')")
    assert page.get_by_role("button", name="创建快照").is_visible()  # the page's words...
    page.get_by_role("button", name="创建快照").click()
    page.wait_for_function(
        "old => { const t = document.getElementById('error').textContent;"
        " return t.includes('UnauthorizedOperation.NoPermission') && t !== old }",
        arg=english,
        timeout=TIMEOUT,
    )
    chinese = page.get_by_role("alert").inner_text()
    assert re.search(r"[\u4e00-\u9fff]", chinese), chinese  # ...and the API's message
    shot(page, "error-denied-zh")


def test_sign_out_leaves_nothing_usable(console_server: Server, page: Any) -> None:
    server = console_server
    root = world.new_account(server, "console")
    sign_in(page, server, root)
    stored = page.evaluate("() => JSON.parse(sessionStorage.getItem('lightkeeper.session'))")
    assert stored["secretId"] != root.secret_id  # temporary credentials, not the key
    everything = page.evaluate("() => JSON.stringify({...sessionStorage, ...localStorage})")
    assert root.secret_key not in everything
    assert root.secret_key not in page.content()
    assert page.context.cookies() == []
    shot(page, "signed-in")

    page.get_by_role("button", name="Sign out").click()
    page.get_by_label("SecretKey").wait_for(timeout=TIMEOUT)
    assert page.evaluate("() => sessionStorage.getItem('lightkeeper.session')") is None
    assert page.evaluate("() => localStorage.length") == 0
    left = page.evaluate("() => JSON.stringify({...sessionStorage})")
    assert stored["secretKey"] not in left and stored["token"] not in left
    assert page.context.cookies() == []
    shot(page, "sign-in")


def test_the_console_is_served_with_a_strict_policy(console_server: Server) -> None:
    server = console_server
    for path in ("/console/", "/console/app.js", "/console/style.css"):
        reply = httpx.get(f"{server.url}{path}")
        assert reply.status_code == 200, path
        csp = reply.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert reply.headers["x-frame-options"] == "DENY"
        assert reply.headers["x-content-type-options"] == "nosniff"
        assert reply.headers["referrer-policy"] == "no-referrer"
    index = httpx.get(f"{server.url}/console/").text
    assert "<script>" not in index and 'onclick="' not in index  # no inline script
    assert httpx.get(f"{server.url}/console/..%2Flightkeeper.db").status_code == 404
    assert httpx.get(f"{server.url}/console/nothing.js").status_code == 404
    browser_root = httpx.get(f"{server.url}/", headers={"Accept": "text/html"})
    assert browser_root.status_code == 302
    assert browser_root.headers["location"] == "/console/"
    api_root = httpx.get(f"{server.url}/")  # not a browser: the API answers, as before
    assert "Error" in api_root.json()["Response"]
