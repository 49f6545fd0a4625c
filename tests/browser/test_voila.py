"""The Voila app in a real browser: Debian's Chromium driven by Playwright (no browser download).

Voila serves notebooks/dashboard.ipynb; each page load gets its own kernel, whose hub serves the
REST API on a port of its own. The test creates and trains an experiment by clicking and waits for
the forecast figure to render; screenshots go to test-artifacts/.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from helpers import free_port, stop_process_group, wait_for

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
# flags from the machine notes: no sandbox as root, and no background traffic on a closed network
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]


@pytest.fixture(scope="module")
def voila(tmp_path_factory):
    port = free_port()
    home = tmp_path_factory.mktemp("voila-home")
    log = open(home / "voila.log", "wb")  # noqa: SIM115 - held open for the server's lifetime
    env = dict(os.environ, EXPERIMENTHUB_HOME=str(home))
    process = subprocess.Popen(
        [str(Path(sys.executable).with_name("voila")), str(ROOT / "notebooks" / "dashboard.ipynb"),
         f"--port={port}", "--no-browser", "--Voila.ip=127.0.0.1"],
        stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 60
    while True:
        assert process.poll() is None, (home / "voila.log").read_text()[-3000:]
        try:
            if requests.get(url + "api", timeout=2).status_code < 500:
                break
        except requests.RequestException:
            pass
        assert time.monotonic() < deadline, "voila did not start within 60 s"
        time.sleep(0.3)
    yield url
    stop_process_group(process)
    log.close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "Debian's chromium package is required (/usr/bin/chromium)"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield browser
        browser.close()


def open_dashboard(browser, url):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(url, timeout=120_000)
    page.wait_for_selector(".eh-create-button", timeout=180_000)  # the kernel ran the notebook
    return page


def test_create_and_train_by_clicking(voila, browser):
    ARTIFACTS.mkdir(exist_ok=True)
    page = open_dashboard(browser, voila)
    try:
        server_url = page.locator(".eh-server-url").inner_text(timeout=30_000)
        api = re.search(r"http://127\.0\.0\.1:\d+", server_url).group(0)
        # a new kernel's MLflow says "starting" while it creates its database, then connected
        health = wait_for(lambda: (h := requests.get(api + "/health", timeout=10).json())["mlops"]["details"]
                          ["status"] != "starting" and h, 120, "MLflow to finish starting")
        assert health["mlops"]["healthy"] is True and health["datastream"]["healthy"] is True

        page.locator(".eh-create-button button, button.eh-create-button").first.click()
        page.wait_for_selector(".eh-figure.js-plotly-plot", timeout=240_000)  # plotly's div is the widget's
        page.wait_for_function(
            "() => [...document.querySelectorAll('.eh-figure.js-plotly-plot .legendtext')]"
            ".some(e => e.textContent.includes('forecast'))", timeout=240_000)
        experiments = requests.get(api + "/experiments", timeout=10).json()
        assert len(experiments) == 1 and list(experiments.values())[0][0][0] == "forecast"
        page.screenshot(path=str(ARTIFACTS / "dashboard-forecast.png"), full_page=True)
    except Exception:
        page.screenshot(path=str(ARTIFACTS / "dashboard-failure.png"), full_page=True)
        raise
    finally:
        page.close()


def test_a_second_visitor_gets_its_own_kernel_and_port(voila, browser):
    first, second = open_dashboard(browser, voila), open_dashboard(browser, voila)
    try:
        urls = [p.locator(".eh-server-url").inner_text(timeout=30_000) for p in (first, second)]
        ports = [re.search(r":(\d+)", u).group(1) for u in urls]
        assert ports[0] != ports[1]
        for url in urls:
            api = re.search(r"http://127\.0\.0\.1:\d+", url).group(0)
            assert requests.get(api + "/health", timeout=10).ok
    finally:
        first.close()
        second.close()
