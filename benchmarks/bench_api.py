"""REST latency with 32 concurrent clients, idle and while two trainings run, against a bare
FastAPI app serving the same payloads from the same process; and the round trip of a trivial cell
in a real Jupyter kernel whose hub runs two trainings, against the same kernel idle.

    .venv/bin/python benchmarks/bench_api.py [--seconds 10]

Targets (issue 3): p99 < 25 ms for the API while training; p99 < 100 ms for a trivial cell.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import table

HERE = Path(__file__).parent
SLOW = {"setup": {"target": "temp_f"}, "create_model": {"model_type": "Prophet", "params": {"mcmc_samples": 2000}}}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def load(urls: list[str], seconds: float, concurrency: int = 32) -> dict[str, tuple[float, float, int]]:
    out = subprocess.run([sys.executable, str(HERE / "_load.py"), str(concurrency), str(seconds), *urls],
                         capture_output=True, text=True, check=True)
    result = json.loads(out.stdout)
    return {u: (percentile(v, 0.5) * 1000, percentile(v, 0.99) * 1000, len(v))
            for u, v in result["latencies"].items()}


def load_wrk(urls: list[str], seconds: float, concurrency: int = 32) -> dict[str, tuple[float, float, int]]:
    """The same measurement with wrk (C, two threads): the load generator barely competes with the
    server for the two cores, so the numbers are the server's."""
    import re
    import shutil

    wrk = shutil.which("wrk")
    out = {}
    for url in urls:
        text = subprocess.run([wrk, "-t2", f"-c{concurrency}", f"-d{max(1, int(seconds / len(urls)))}s",
                               "--latency", url], capture_output=True, text=True, check=True).stdout
        found = {m[0]: _ms(m[1]) for m in re.findall(r"^\s+(50|99)%\s+(\S+)$", text, re.M)}
        count = int(re.search(r"(\d+) requests in", text).group(1))
        out[url] = (found["50"], found["99"], count)
    return out


def _ms(value: str) -> float:
    for unit, factor in (("us", 0.001), ("ms", 1.0), ("s", 1000.0)):
        if value.endswith(unit):
            return float(value[: -len(unit)]) * factor
    return float(value)


def bare_app(health: dict, experiments: dict, figure: str):
    """The same three answers without a hub behind them."""
    from fastapi import FastAPI
    from fastapi.responses import Response

    app = FastAPI()

    @app.get("/health")
    def get_health() -> dict:
        return health

    @app.get("/experiments")
    def get_experiments() -> dict:
        return experiments

    @app.get("/{name}/plot/{plot_name}")
    def get_plot(name: str, plot_name: str) -> Response:
        return Response(figure, media_type="application/json")

    return app


def serve_bare(app) -> str:
    import socket

    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # as uvicorn's own bind
    sock.bind(("127.0.0.1", 0))
    sock.listen(2048)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off"))
    threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True).start()
    while not server.started:
        time.sleep(0.01)
    return f"http://127.0.0.1:{sock.getsockname()[1]}"


def api_latency(seconds: float) -> list[list[object]]:
    from experimenthub import ExperimentHub, datasets

    rows = []
    with tempfile.TemporaryDirectory() as home:
        hub = ExperimentHub(home=home)
        server = hub.serve(port=0)
        hub.create_experiment("sales", "time_series", {"setup": {"target": "y"}},
                              data=datasets.load("prophet_daily"))
        hub.wait("sales", timeout=300, tracked=True)
        bare = serve_bare(bare_app(hub.health(), {"sales": list(map(list, hub.plot_names("sales")))},
                                   hub.plot_json("sales", "forecast")))
        paths = ["/health", "/experiments", "/sales/plot/forecast"]
        hourly = datasets.load("seattle_temps_hourly_2010")
        for phase in ("idle", "two trainings running"):
            if phase != "idle":
                for name in ("t1", "t2"):
                    hub.create_experiment(name, "time_series", SLOW, data=hourly)
                while any(hub.status(n).stage != "fitting" for n in ("t1", "t2")):
                    time.sleep(0.05)
            measure = load_wrk if shutil.which("wrk") else load
            ours = measure([server.url + p for p in paths], seconds)
            theirs = measure([bare + p for p in paths], seconds)
            for p in paths:
                o, b = ours[server.url + p], theirs[bare + p]
                rows.append([phase, p, o[0], o[1], b[0], b[1], o[1] / b[1], o[2]])
            if phase != "idle":
                assert all(hub.status(n).state == "training" for n in ("t1", "t2")), "trainings ended early"
                for name in ("t1", "t2"):
                    hub.stop_training(name)
        hub.stop_server()
        hub.close()
    return rows


def kernel_round_trip(repeats: int) -> list[list[object]]:
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp, "kernels", "eh")
        spec.mkdir(parents=True)
        (spec / "kernel.json").write_text(json.dumps({
            "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "eh", "language": "python"}))
        manager = KernelManager(kernel_name="eh", kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(spec.parent)]))
        manager.start_kernel(cwd=tmp)
        client = manager.client()
        client.start_channels()
        client.wait_for_ready(timeout=120)

        def cell(code: str, timeout: float = 600) -> None:
            reply = client.execute_interactive(textwrap.dedent(code), timeout=timeout, output_hook=lambda m: None)
            assert reply["content"]["status"] == "ok", reply["content"]

        def round_trips() -> list[float]:
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                cell("pass")
                times.append((time.perf_counter() - start) * 1000)
            return times

        cell(f"""
            from experimenthub import ExperimentHub, datasets
            hub = ExperimentHub(home={tmp!r})
            server = hub.serve(port=0)
            hourly = datasets.load("seattle_temps_hourly_2010")
        """)
        idle = round_trips()
        cell(f"""
            import time
            for name in ("t1", "t2"):
                hub.create_experiment(name, "time_series", {SLOW!r}, data=hourly)
            while any(hub.status(n).stage != "fitting" for n in ("t1", "t2")):
                time.sleep(0.05)
        """)
        busy = round_trips()
        cell("for n in ('t1', 't2'): hub.stop_training(n)\nhub.stop_server()")
        client.stop_channels()
        manager.shutdown_kernel(now=True)
    return [["idle kernel", statistics.median(idle), percentile(idle, 0.99)],
            ["two trainings running", statistics.median(busy), percentile(busy, 0.99)]]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--cells", type=int, default=200)
    args = parser.parse_args()
    rows = api_latency(args.seconds)
    tool = "wrk -t2 -c32" if shutil.which("wrk") else "32 Python client threads (install wrk for less noise)"
    print(f"REST latency, 32 concurrent keep-alive connections ({tool}), {args.seconds:.0f} s per phase (ms)")
    print(table(["phase", "path", "ours p50", "ours p99", "bare p50", "bare p99", "p99 ratio", "requests"], rows))
    print()
    print(f"Round trip of a trivial cell ('pass'), {args.cells} cells (ms)")
    print(table(["kernel", "p50", "p99"], kernel_round_trip(args.cells)))


if __name__ == "__main__":
    main()
