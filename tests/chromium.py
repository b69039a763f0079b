"""Headless Chromium driven through chromedriver's WebDriver HTTP API, with the standard library only.

Debian's `chromium` and `chromium-driver` packages (.ci/run installs them when missing). The tests
open pages with it; scripts/screenshot_report.py takes the README's screenshot with it."""
from __future__ import annotations

import base64
import json
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--hide-scrollbars"]


def missing() -> str | None:
    """Why no browser can be driven here, or None."""
    absent = [name for name in ("chromium", "chromedriver") if shutil.which(name) is None]
    return f"{' and '.join(absent)} not found (apt-get install chromium chromium-driver)" if absent else None


class Chromium:
    """One headless browser with a fresh profile; `open`, `run` a script, read the `console`, `close`."""

    def __init__(self, width: int = 1280, height: int = 1000, timeout: float = 30):
        self.seconds = 0.0  # spent starting the browser and waiting on it
        start = time.perf_counter()
        self.profile = tempfile.mkdtemp(prefix="acai-chromium-")
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.base = f"http://127.0.0.1:{port}"
        self.driver = subprocess.Popen([shutil.which("chromedriver"), f"--port={port}"],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    if self.call("GET", "/status").get("ready"):
                        break
                except (OSError, urllib.error.URLError):
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"chromedriver did not answer within {timeout} s")
                time.sleep(0.05)
            options = {"binary": shutil.which("chromium"),
                       "args": FLAGS + [f"--user-data-dir={self.profile}", f"--window-size={width},{height}"]}
            capabilities = {"browserName": "chrome", "goog:chromeOptions": options,
                            "goog:loggingPrefs": {"browser": "ALL"}}
            self.session = "/session/" + self.call("POST", "/session", {"capabilities": {"alwaysMatch": capabilities}})[
                "sessionId"]
        except BaseException:
            self.driver.kill()
            self.driver.wait()
            raise
        self.seconds = time.perf_counter() - start

    def call(self, method: str, path: str, body: dict | None = None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data, {"Content-Type": "application/json"}, method=method)
        start = time.perf_counter()
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return json.loads(response.read())["value"]
        except urllib.error.HTTPError as error:
            value = json.loads(error.read() or b"{}").get("value", {})
            raise RuntimeError(f"WebDriver {method} {path}: {value.get('error')}: {value.get('message')}") from None
        finally:
            self.seconds += time.perf_counter() - start

    def open(self, url: str) -> None:
        """Navigate and wait until the page and its images have loaded."""
        self.call("POST", self.session + "/url", {"url": url})

    def run(self, script: str, *args):
        """The value a script's `return` gives, run in the page."""
        return self.call("POST", self.session + "/execute/sync", {"script": script, "args": list(args)})

    def console(self) -> list[dict]:
        """The console entries (and failed loads, uncaught errors) since the last call: level, message."""
        return self.call("POST", self.session + "/se/log", {"type": "browser"})

    def screenshot(self, path, width: int = 1280, height: int | None = None) -> Path:
        """The page as a PNG, `height` pixels of it (default: all; the window is made as tall first)."""
        height = height or self.run("return document.documentElement.scrollHeight")
        self.call("POST", self.session + "/window/rect", {"width": width, "height": height})
        Path(path).write_bytes(base64.b64decode(self.call("GET", self.session + "/screenshot")))
        return Path(path)

    def close(self) -> None:
        try:
            self.call("DELETE", self.session)
        finally:
            self.driver.terminate()
            self.driver.wait(timeout=10)
            shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
