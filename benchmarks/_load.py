"""Load generator for bench_api.py, run as its own process: CONCURRENCY clients, each with a
keep-alive connection, request URLs round-robin for DURATION seconds; prints latencies (JSON)."""

from __future__ import annotations

import json
import sys
import threading
import time

import requests


def main(urls: list[str], concurrency: int, duration: float) -> None:
    latencies: dict[str, list[float]] = {u: [] for u in urls}
    errors = [0]
    stop = time.monotonic() + duration

    def client(offset: int) -> None:
        session = requests.Session()
        i = offset
        while time.monotonic() < stop:
            url = urls[i % len(urls)]
            i += 1
            start = time.perf_counter()
            try:
                ok = session.get(url, timeout=30).ok
            except requests.RequestException:
                ok = False
            elapsed = time.perf_counter() - start
            if ok:
                latencies[url].append(elapsed)
            else:
                errors[0] += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(json.dumps({"latencies": latencies, "errors": errors[0]}))


if __name__ == "__main__":
    main(sys.argv[3:], int(sys.argv[1]), float(sys.argv[2]))
