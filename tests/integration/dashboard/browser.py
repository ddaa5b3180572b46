"""Debian's headless Chromium driven by Selenium through Debian's chromedriver (test code).

Owns: starting the browser the dashboard's tests and benchmark use — ``/usr/bin/chromium``
and ``/usr/bin/chromedriver`` from the ``chromium`` and ``chromium-driver`` packages
(``hack/chromium.sh``), never a downloaded browser or driver (Selenium's own driver
manager is not used when both paths are given) — with the browser's network log on, so a
test can see every request the page makes. Missing: a failure under CI=true, else a skip.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

CHROMIUM = os.environ.get("CHROMIUM_BIN") or shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = os.environ.get("CHROMEDRIVER_BIN") or shutil.which("chromedriver") or \
    "/usr/bin/chromedriver"


def unavailable(reason: str) -> None:
    """Fail in CI (every real part must be there), skip elsewhere."""
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


@contextmanager
def chromium(width: int = 1500, height: int = 950) -> Iterator[Any]:
    """A headless Chromium WebDriver session, quit afterwards."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        unavailable("selenium is not installed (pip install -e '.[dev]')")
        raise
    if not (os.path.exists(CHROMIUM) and os.path.exists(DRIVER)):
        unavailable("Debian's chromium and chromium-driver are not installed "
                    "(hack/chromium.sh)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--no-first-run", "--disable-extensions", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--metrics-recording-only",
                "--password-store=basic", f"--window-size={width},{height}"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    try:
        yield driver
    finally:
        driver.quit()


def requests_made(driver: Any) -> list[str]:
    """The URLs of the requests the page sent since the last call (the network log)."""
    urls = []
    for entry in driver.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg.get("method") == "Network.requestWillBeSent":
            urls.append(str(msg["params"]["request"]["url"]))
    return urls


def console_errors(driver: Any) -> list[str]:
    """Errors the page logged (a CSP violation is one)."""
    return [e["message"] for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
