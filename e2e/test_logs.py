"""The plugin's log lines explain every refusal and never carry a secret or
a token (operators ship these logs to places their secrets must not go).

Envoy runs at info with the wasm component at debug, so every plugin line is
in the log. Only the plugin's own lines (``wasm log``) are checked: Envoy's
access log prints request paths, query strings included, which is Envoy's
business and configurable there.
"""

from __future__ import annotations

import base64

import pytest

from common import C1, C2, FORM, TOKEN_PATH, consumers, issue_token
from harness import form


CONFIG = {"consumers": consumers(C1, C2), "_rules_": [{"_match_route_": ["route-b"], "allow": ["consumer2"]}],
          "global_auth": True}


@pytest.fixture(scope="module")
def gw(start_gateway):
    return start_gateway(CONFIG, extra_args=["--component-log-level", "wasm:debug"])


def plugin_lines(gw) -> list[str]:
    return [line for line in gw.log_text().splitlines() if "wasm log" in line]


def tamper(token: str) -> str:
    head, payload, sig = token.split(".")
    return f"{head}.{payload}.{sig[:-4]}AAAA"


def test_refusals_are_explained_without_secrets_or_tokens(gw):
    token = issue_token(gw, C1)
    wrong_secret = C1.client_secret[::-1]
    basic = base64.b64encode(f"{C1.client_id}:{wrong_secret}".encode()).decode()
    attempts = [
        (gw.get("/a/x", headers={"Authorization": f"Bearer {tamper(token)}"}), 401),
        (gw.get("/b/x", headers={"Authorization": f"Bearer {token}"}), 403),
        (gw.get("/a/x?access_token=" + tamper(token)), 401),
        (gw.post(TOKEN_PATH, form({"grant_type": "client_credentials"}),
                 headers={"Content-Type": FORM, "Authorization": f"Basic {basic}"}), 401),
        (gw.post(TOKEN_PATH, form({"grant_type": "client_credentials", "client_id": C1.client_id,
                                   "client_secret": wrong_secret}), headers={"Content-Type": FORM}), 400),
    ]
    for response, status in attempts:
        assert response.status == status, response

    # One debug line per verification refusal: status, route and reason.
    for needle, count in [('edge-auth: 403 on route "route-b": consumer not in allow list', 1),
                          ('edge-auth: 401 on route "route-a": ', 2)]:
        found = gw.wait_log(needle, timeout=10)
        assert len(found) == count, (needle, found, gw.log_tail())

    lines = plugin_lines(gw)
    assert lines, gw.log_tail()
    forbidden = {
        "consumer1's secret": C1.client_secret,
        "consumer2's secret": C2.client_secret,
        "the wrong secret that was tried": wrong_secret,
        "the Basic credentials": basic,
    }
    for i, part in enumerate(token.split(".")):
        forbidden[f"token part {i}"] = part
    forbidden["the tampered signature"] = tamper(token).split(".")[2]
    for line in lines:
        for what, value in forbidden.items():
            assert value not in line, f"{what} in a plugin log line: {line}"
