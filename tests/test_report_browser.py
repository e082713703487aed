"""The HTML report in a real headless Chromium, driven over the DevTools protocol.

Checks: the page loads with no console error, no exception and no network request other than
the file itself; model outputs holding ``<script>``/HTML show as text and run nothing; the
"only disagreements" filter works. Saves ``test-artifacts/report.png``.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from results_builder import GEN_TASK, MC_TASK, flags, make_run

from evalsuite.report import build_report, write_html
from evalsuite.results import read_runs

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
SCRIPT_OUTPUT = "<script>window.__pwned=1</script><b>bold?</b>"
IMG_OUTPUT = '<img src="http://example.invalid/x.png" onerror="window.__pwned=2">'


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        _chromium() is None, reason="chromium is not installed (apt-get install chromium)"
    ),
]


class DevTools:
    """Minimal DevTools-protocol client over one page's websocket; records every event."""

    def __init__(self, ws_url: str) -> None:
        import websocket  # websocket-client

        self.ws = websocket.create_connection(ws_url, timeout=30, suppress_origin=True)
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        my_id = self.next_id
        self.ws.send(json.dumps({"id": my_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == my_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            if "method" in msg:
                self.events.append(msg)

    def wait_for(self, method: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        if any(e["method"] == method for e in self.events):
            return
        while time.monotonic() < deadline:
            msg = json.loads(self.ws.recv())
            if "method" in msg:
                self.events.append(msg)
                if msg["method"] == method:
                    return
        raise TimeoutError(f"no {method} within {timeout} s")

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"page script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def close(self) -> None:
        self.ws.close()


@pytest.fixture
def chromium_page(tmp_path: Path):
    """A fresh headless Chromium (own profile) and a DevTools client on its blank page."""
    profile = tmp_path / "profile"
    proc = subprocess.Popen(
        [
            _chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--disable-dev-shm-usage",
            f"--user-data-dir={profile}",
            "--remote-debugging-port=0",
            "--window-size=1400,1000",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = None
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text().strip()):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"chromium did not start (exit {proc.poll()})")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as resp:
            targets = json.load(resp)
        page = next(t for t in targets if t.get("type") == "page")
        client = DevTools(page["webSocketDebuggerUrl"])
        yield client
    finally:
        if client is not None:
            client.close()
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def _report(tmp_path: Path) -> Path:
    root = tmp_path / "runs"
    make_run(
        root,
        {GEN_TASK: flags(12, 8), MC_TASK: flags(12, 7)},
        outputs={GEN_TASK: {0: SCRIPT_OUTPUT, 1: IMG_OUTPUT}},
    )
    make_run(
        root,
        {GEN_TASK: flags(12, 4), MC_TASK: flags(12, 9, 2)},
        preset="llada-8b",
        seconds=1.5,
        nfe=256,
    )
    bad = root / "zz-truncated"
    bad.mkdir()
    (bad / "run.json").write_text('{"schema_version": 1, "run_id": "x", "tas')
    runs, skipped = read_runs([root], on_error="skip")
    assert len(runs) == 2 and len(skipped) == 1
    return write_html(
        build_report(runs, skipped=skipped, generated_utc="test"), tmp_path / "report.html"
    )


def test_report_renders_offline_and_escapes_outputs(
    tmp_path: Path, chromium_page: DevTools
) -> None:
    html = _report(tmp_path)
    page = chromium_page
    for domain in ("Runtime", "Log", "Network", "Page"):
        page.call(f"{domain}.enable")
    page.call(
        "Emulation.setDeviceMetricsOverride",
        width=1400,
        height=1000,
        deviceScaleFactor=1,
        mobile=False,
    )
    page.call("Page.navigate", url=html.as_uri())
    page.wait_for("Page.loadEventFired")

    text = page.evaluate("document.body.innerText")
    assert SCRIPT_OUTPUT in text
    assert IMG_OUTPUT in text
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.evaluate("document.querySelectorAll('script').length") == 1
    assert page.evaluate("document.querySelectorAll('img, b, iframe').length") == 0
    assert "zz-truncated" in page.evaluate("document.getElementById('skipped').innerText")
    assert page.evaluate("document.querySelectorAll('svg').length") >= 3

    visible = (
        "Array.from(document.querySelectorAll('section.comparison tbody tr'))"
        ".filter(r => r.offsetParent !== null).length"
    )
    before = page.evaluate(visible)
    disagreeing = page.evaluate(
        "document.querySelectorAll('section.comparison tr.disagree').length"
    )
    assert 0 < disagreeing < before
    page.evaluate("document.querySelectorAll('input.disagree-filter').forEach(b => b.click())")
    assert page.evaluate(visible) == disagreeing

    page.evaluate("document.querySelectorAll('input.disagree-filter').forEach(b => b.click())")
    metrics = page.call("Page.getLayoutMetrics")
    height = min(int(metrics["cssContentSize"]["height"]), 6000)
    shot = page.call(
        "Page.captureScreenshot",
        format="png",
        captureBeyondViewport=True,
        clip={"x": 0, "y": 0, "width": 1400, "height": height, "scale": 1},
    )
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "report.png").write_bytes(base64.b64decode(shot["data"]))

    page.call("Runtime.evaluate", expression="0")  # flush pending events
    errors = [
        e
        for e in page.events
        if e["method"] == "Runtime.exceptionThrown"
        or (
            e["method"] == "Runtime.consoleAPICalled" and e["params"]["type"] in ("error", "assert")
        )
        or (e["method"] == "Log.entryAdded" and e["params"]["entry"]["level"] == "error")
    ]
    assert errors == []
    requests = [
        e["params"]["request"]["url"]
        for e in page.events
        if e["method"] == "Network.requestWillBeSent"
    ]
    assert requests == [html.as_uri()], requests
    assert os.path.getsize(ARTIFACTS / "report.png") > 10_000
