"""The REST switch for streaming mode: watch, publish batches, read predictions, unwatch."""

from __future__ import annotations

import copy
import time

import requests
from helpers import SEED_CONFIG


def test_watch_over_rest(served, daily_records):
    hub, server = served
    config = copy.deepcopy(SEED_CONFIG)
    config["data"] = daily_records[:-20]
    requests.post(f"{server.url}/create_experiment/streamed/time_series", json=config).raise_for_status()
    hub.wait("streamed", timeout=120)
    try:
        watch = requests.post(f"{server.url}/streamed/watch").json()
        assert watch == {"status": "success", "message": "Watching queue streamed"}
        assert requests.get(f"{server.url}/streamed/status").json()["watching"] is True
        for start in range(0, 20, 5):  # four batches of five new days
            requests.post(f"{server.url}/publish/streamed", json=daily_records[-20 + start:][:5]).raise_for_status()
        deadline = time.monotonic() + 60
        while len(hub.predictions("streamed") if hub.predictions("streamed") is not None else []) < 20:
            assert time.monotonic() < deadline, "the four batches were not predicted"
            time.sleep(0.1)
        rows = requests.get(f"{server.url}/streamed/predictions").json()
        assert [r["ds"][:10] for r in rows] == [r["ds"][:10] for r in daily_records[-20:]]  # in order
        assert hub.datastream.depth("streamed") == 0
    finally:
        unwatch = requests.post(f"{server.url}/streamed/unwatch").json()
    assert unwatch["message"] == "Stopped watching queue streamed"
    assert requests.get(f"{server.url}/streamed/status").json()["watching"] is False
    assert requests.post(f"{server.url}/missing/watch").status_code == 404
    hub.delete("streamed")
