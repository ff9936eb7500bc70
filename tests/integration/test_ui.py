"""The live web page in a real browser while a real call is up.

    cli 10.0.0.11 --port 1-- [OVS userspace bridge, ryu-pptp-alg] --port 2-- srv 198.51.100.10

Headless Chromium (Debian's, driven by Playwright: no browser download) loads
/pptp/ui/ from the controller's REST port, sees the client's session and its call
counting up without a reload, filters and sorts, tears the session down with its
button (accepting the confirmation) and sees the row go. Any console error or page
error fails the test. Screenshots: the test's tmp_path and ARTIFACTS.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from ryu_pptp_alg.testbed import ovs
from ryu_pptp_alg.testbed.controller import Controller
from ryu_pptp_alg.testbed.netns import Namespace
from ryu_pptp_alg.testbed.pptp_peers import PptpClient, PptpServer
from ryu_pptp_alg.testbed.proc import have, wait_for
from tests.conftest import REPORT, require

DPID = 0xB4
CLIENT_IP = "10.0.0.11"
SERVER_IP = "198.51.100.10"
PUBLIC = "203.0.113.1"
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path("/tmp/ryu-pptp-alg-artifacts")
TIMEOUT_MS = 15_000


@pytest.fixture
def net(ovs_running, run_id, tmp_path):
    for tool in ("pptp", "pptpd"):
        require(have(tool), f"{tool} is not installed (run make test)")
    config = {"gateways": [{"dpid": DPID, "name": "nat-ui", "inside_ports": [1],
                            "outside_ports": [2], "inside_address": "10.0.0.1/24",
                            "public_addresses": [PUBLIC]}],
              "timeouts": {"stats_interval": 1}}
    with Controller(config, tmp_path / "ctl") as controller, \
            ovs.Bridge(f"pui{run_id}", DPID, controller.of_port) as bridge, \
            Namespace(f"pu{run_id}cl") as cli, Namespace(f"pu{run_id}sv") as srv:
        cli.attach(bridge, 1, f"{CLIENT_IP}/24", gateway="10.0.0.1")
        srv.attach(bridge, 2, f"{SERVER_IP}/24")
        srv.run("ip", "route", "add", "203.0.113.0/24", "dev", "eth0")
        controller.wait_connected(DPID)
        yield controller, cli, srv, tmp_path


@pytest.fixture
def browser():
    require(os.access(CHROMIUM, os.X_OK), f"{CHROMIUM} is not installed (run make test)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        require(False, "playwright is not installed (run make test)")
    with sync_playwright() as playwright:
        # Debian's chromium, not one Playwright downloads; no sandbox: we run as root.
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


def client_session(controller: Controller) -> dict[str, Any] | None:
    for session in controller.get("/pptp/sessions")["sessions"]:
        if session["client"].startswith(f"{CLIENT_IP}:") and session["calls"]:
            return session
    return None


def keep(shot: Path) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy(shot, ARTIFACTS / shot.name))


def test_page_shows_the_call_and_tears_it_down(net, browser):
    from playwright.sync_api import expect

    controller, cli, srv, tmp = net
    errors: list[str] = []
    page = browser.new_page(viewport={"width": 1500, "height": 700})
    page.on("console", lambda msg: errors.append(f"console {msg.type}: {msg.text}")
            if msg.type == "error" else None)
    page.on("pageerror", lambda err: errors.append(f"page error: {err}"))
    dialogs: list[str] = []

    def accept(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.accept()

    with PptpServer(srv, SERVER_IP, tmp / "pptpd"), \
            PptpClient(cli, SERVER_IP, CLIENT_IP, tmp / "pptp") as client:
        client.wait_ppp_up(20)
        session = wait_for(lambda: client_session(controller), 10, "the client's session")
        page.goto(f"{controller.url}/pptp/ui")  # the redirect to /pptp/ui/ included
        assert page.url.endswith("/pptp/ui/")

        row = page.locator(f'#sessions tbody tr[data-id="{session["id"]}"]')
        expect(row).to_contain_text(CLIENT_IP, timeout=TIMEOUT_MS)
        expect(row).to_contain_text(f"{SERVER_IP}:1723")
        expect(row).to_contain_text(f"{PUBLIC}:")
        expect(row.locator(".call .badge")).to_have_text("fast", timeout=TIMEOUT_MS)
        gateway = page.locator(f'#gateways tbody tr[data-dpid="{DPID}"]')
        expect(gateway).to_contain_text("nat-ui")
        expect(gateway).to_contain_text("connected")
        expect(gateway).to_contain_text("1 / 1")
        expect(gateway).to_contain_text(f"{PUBLIC} (1)")

        # Live: the call's packet count (exact, in the cell's title) goes up, no reload.
        packets = row.locator("td").nth(7)
        first = packets.get_attribute("title")
        expect(packets).not_to_have_attribute("title", first or "", timeout=TIMEOUT_MS)

        # Filter by client address, then sort by a column (twice: descending).
        page.fill("#filter", "192.0.2.")
        expect(row).to_have_count(0)
        expect(page.locator("#count")).to_have_text("(0 of 1)")
        page.fill("#filter", CLIENT_IP)
        expect(row).to_have_count(1)
        header = page.locator('#sessions th[data-key="bytes"]')
        header.click()
        expect(header).to_have_attribute("aria-sort", "ascending")
        header.click()
        expect(header).to_have_attribute("aria-sort", "descending")

        shot = tmp / "ui.png"
        page.screenshot(path=str(shot), full_page=True)

        page.once("dialog", accept)
        row.locator("button.teardown").click()
        message = page.locator("#message")
        try:
            expect(row).to_have_count(0, timeout=TIMEOUT_MS)
        except AssertionError as err:
            raise AssertionError(f"the row stayed; the page says: {message.text_content()!r}; "
                                 f"errors: {errors}") from err
        expect(message).to_contain_text(f"Torn down {session['id']}")
        expect(page.locator("#sessions tbody tr", has_text=f"{CLIENT_IP}:")).to_have_count(0)
        after = tmp / "ui-after-teardown.png"
        page.screenshot(path=str(after), full_page=True)
        assert all(s["id"] != session["id"] for s in controller.get("/pptp/sessions")["sessions"])

    assert len(dialogs) == 1 and session["id"] in dialogs[0] and CLIENT_IP in dialogs[0], dialogs
    assert not errors, errors
    kept = [keep(shot), keep(after)]
    REPORT.append(f"web page (/pptp/ui/) in headless chromium: screenshots {kept[0]} "
                  f"(call up), {kept[1]} (after teardown: {message.text_content()})")
