from __future__ import annotations

import json
import urllib.request


async def test_healthz(http_server_client):
    response = await http_server_client.fetch("/healthz")
    assert response.code == 200
    assert json.loads(response.body)["status"] == "ok"


def test_live_server_serves(live_server):
    with urllib.request.urlopen(live_server.url + "/healthz", timeout=5) as response:
        assert json.loads(response.read())["status"] == "ok"
