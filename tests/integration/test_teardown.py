"""Tearing a real session down through the REST API (issue 14): pptp-linux inside,
pptpd outside, OVS in between (the set-up of test_outbound_pptp.py).

DELETE /pptp/sessions/{id} must reach both peers the PPTP way (pptpd logs the
Call-Clear-Request and the Stop-Control-Connection-Request promptly), take the call's
GRE flows out of table 1, and leave the session table without the session.
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any

from ryu_pptp_alg import pipeline
from ryu_pptp_alg.testbed import ovs
from ryu_pptp_alg.testbed.controller import Controller
from ryu_pptp_alg.testbed.pptp_peers import PptpClient, PptpServer
from ryu_pptp_alg.testbed.proc import wait_for
from tests.integration.test_outbound_pptp import (
    CALL_ID,
    CLIENT_IP,
    SERVER_IP,
    established_call,
    net,  # noqa: F401  (the fixture)
)

PROMPTLY = 2.0  # seconds for the peers to hear of it


def delete(controller: Controller, path: str) -> Any:
    request = urllib.request.Request(controller.url + path, method="DELETE")
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.load(response)


def flows_of(bridge: ovs.Bridge, *kinds: pipeline.CookieKind) -> list[str]:
    """The switch's flows (ovs-ofctl dump-flows lines) whose cookie is of ``kinds``."""
    found = []
    for line in bridge.dump_flows().splitlines():
        if "cookie=" not in line:
            continue
        decoded = pipeline.decode_cookie(int(line.split("cookie=")[1].split(",")[0], 16))
        if decoded is not None and decoded.kind in kinds:
            found.append(line)
    return found


GRE = (pipeline.CookieKind.GRE_PAIR, pipeline.CookieKind.GRE_KEY)


def test_deleting_a_session_tells_the_peers_and_removes_its_flows(net):  # noqa: F811
    controller, bridge, cli, srv, tmp = net
    with PptpServer(srv, SERVER_IP, tmp / "pptpd") as server, \
            PptpClient(cli, SERVER_IP, CLIENT_IP, tmp / "pptp", call_id=CALL_ID) as client:
        client.wait_ppp_up(20)
        wait_for(lambda: established_call(controller), 10, "an established call")
        assert flows_of(bridge, *GRE) and flows_of(bridge, pipeline.CookieKind.CONNECTION)
        (session,) = controller.get("/pptp/sessions")["sessions"]
        server_lines, client_lines = len(server.log()), len(client.log())
        answer = delete(controller, f"/pptp/sessions/{session['id']}")["torn_down"]
        assert answer["calls"] == [CALL_ID]
        assert answer["peers_told"] is True
        assert answer["flows_deleted"] == 4  # its two tracked flows, its pair's two

        def heard(log: list[str], *needles: str) -> bool:
            return all(any(n in line for line in log) for n in needles)
        # The server takes the client's Call-Clear-Request; the client the server's
        # Call-Disconnect-Notify and Stop-Control-Connection-Request; both promptly.
        wait_for(lambda: heard(server.log()[server_lines:], "CALL CLR request"),
                 PROMPTLY, "pptpd to hear the call cleared")
        wait_for(lambda: heard(client.log()[client_lines:],
                               "Call disconnect notification received",
                               "Administrative Shutdown",
                               "Received Stop Control Connection Request"),
                 PROMPTLY, "pptp to hear the call disconnected and the connection stopped")
        assert flows_of(bridge, *GRE) == [], bridge.dump_flows()
        assert flows_of(bridge, pipeline.CookieKind.CONNECTION) == [], bridge.dump_flows()
        assert controller.get("/pptp/sessions")["sessions"] == []
        (gateway,) = controller.get("/pptp/gateways")["gateways"]
        assert gateway["counters"]["sessions_torn_down"] == 1


def test_ending_one_call_tells_the_peers_and_the_connection_goes_on(net):  # noqa: F811
    controller, bridge, cli, srv, tmp = net
    with PptpServer(srv, SERVER_IP, tmp / "pptpd") as server, \
            PptpClient(cli, SERVER_IP, CLIENT_IP, tmp / "pptp", call_id=CALL_ID) as client:
        client.wait_ppp_up(20)
        wait_for(lambda: established_call(controller), 10, "an established call")
        (session,) = controller.get("/pptp/sessions")["sessions"]
        server_lines, client_lines = len(server.log()), len(client.log())
        answer = delete(controller,
                        f"/pptp/sessions/{session['id']}/calls/{CALL_ID}")["torn_down"]
        assert answer["calls"] == [CALL_ID] and answer["peers_told"] is True
        assert flows_of(bridge, *GRE) == [], bridge.dump_flows()
        wait_for(lambda: any("CALL CLR request" in line
                             for line in server.log()[server_lines:]),
                 PROMPTLY, "pptpd to hear the call cleared")
        wait_for(lambda: any("Call disconnect notification received" in line
                             for line in client.log()[client_lines:]),
                 PROMPTLY, "pptp to hear the call disconnected")
        # pptp-linux then closes its connection: its FIN goes after the injected
        # Call-Clear-Request (seq shifted), pptpd's after the injected notify, and each
        # acknowledgement comes back mapped. Had either been wrong, the client's FIN would
        # stay unacknowledged (FIN-WAIT) instead of the connection reaching TIME-WAIT.
        wait_for(lambda: f"{SERVER_IP}:1723" in cli.run(
            "ss", "-Htan", "state", "time-wait", check=False).stdout,
            5, "the client's connection to close cleanly (TIME-WAIT)")
        assert f"{SERVER_IP}:1723" not in cli.run(
            "ss", "-Htan", "state", "fin-wait-1", check=False).stdout
        (gateway,) = controller.get("/pptp/gateways")["gateways"]
        assert gateway["counters"]["calls_torn_down"] == 1
