"""Headless Chromium over the DevTools protocol: open a report, check its layout, screenshot it.

Used by ``tests/test_report_browser.py`` and ``scripts/screenshot_report.py``. Needs a
``chromium`` (or ``chromium-browser``/``google-chrome``) on PATH and the ``websocket-client``
package (the ``dev`` extra); both are imported or looked up only when used.

The browser runs with its own throw-away profile, no sandbox (containers), no GPU, and every
background service that could reach the network turned off.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def find_chromium() -> str | None:
    """Path of the first Chromium-like browser on PATH, or ``None``."""
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    return None


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


@contextmanager
def chromium_page(
    profile: Path | None = None, *, width: int = 1400, height: int = 1000, start_timeout: float = 60
) -> Iterator[DevTools]:
    """A fresh headless Chromium (own profile) and a DevTools client on its blank page.

    RuntimeError when no browser is installed or it does not start within ``start_timeout``.
    """
    browser = find_chromium()
    if browser is None:
        raise RuntimeError(
            f"no Chromium found on PATH (tried {', '.join(BROWSERS)}); install one, e.g. "
            "`apt-get install chromium`"
        )
    # the browser's helper processes may still write to the profile as it exits: a profile
    # that cannot be removed at once is left to the system's temporary-file cleanup
    with tempfile.TemporaryDirectory(prefix="evalsuite-chromium-",
                                     ignore_cleanup_errors=True) as tmp:
        profile = profile or Path(tmp) / "profile"
        proc = subprocess.Popen(
            [
                browser,
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
                "--hide-scrollbars",
                f"--user-data-dir={profile}",
                "--remote-debugging-port=0",
                f"--window-size={width},{height}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = None
        try:
            port_file = profile / "DevToolsActivePort"
            deadline = time.monotonic() + start_timeout
            while not (port_file.exists() and port_file.read_text().strip()):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{browser} did not start (exit {proc.poll()})")
                time.sleep(0.1)
            port = int(port_file.read_text().split()[0])
            url = f"http://127.0.0.1:{port}/json/list"
            with urllib.request.urlopen(url, timeout=10) as resp:
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
                proc.wait(timeout=10)


def open_page(page: DevTools, path: Path, *, width: int, height: int = 1000) -> None:
    """Enable the domains the checks read, set a ``width`` × ``height`` viewport, load ``path``."""
    for domain in ("Runtime", "Log", "Network", "Page"):
        page.call(f"{domain}.enable")
    page.call(
        "Emulation.setDeviceMetricsOverride",
        width=width,
        height=height,
        deviceScaleFactor=1,
        mobile=False,
    )
    page.call("Page.navigate", url=Path(path).resolve().as_uri())
    page.wait_for("Page.loadEventFired")


def screenshot(page: DevTools, out: Path, *, width: int, max_height: int = 16000) -> Path:
    """Save the whole page (up to ``max_height`` pixels tall) as a PNG at ``out``."""
    metrics = page.call("Page.getLayoutMetrics")
    height = min(int(metrics["cssContentSize"]["height"]), max_height)
    shot = page.call(
        "Page.captureScreenshot",
        format="png",
        captureBeyondViewport=True,
        clip={"x": 0, "y": 0, "width": width, "height": height, "scale": 1},
    )
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(base64.b64decode(shot["data"]))
    return out


OVERFLOW_JS = r"""
(() => {
  const cw = document.documentElement.clientWidth;
  const clipper = el => {
    for (let a = el.parentElement; a && a !== document.body; a = a.parentElement) {
      if (['auto', 'scroll', 'hidden', 'clip'].includes(getComputedStyle(a).overflowX)) return a;
    }
    return null;
  };
  const cls = el => typeof el.className === 'string' && el.className
    ? '.' + el.className.split(' ').join('.') : '';
  const name = el => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') + cls(el);
  const offenders = [];
  for (const el of document.querySelectorAll('body *')) {
    const r = el.getBoundingClientRect();
    if (r.width === 0 && r.height === 0) continue;
    if (r.right <= cw + 0.5 && r.left >= -0.5) continue;
    const box = clipper(el);
    if (box) {
      const b = box.getBoundingClientRect();
      if (b.right <= cw + 0.5 && b.left >= -0.5) continue;
    }
    offenders.push(name(el) + ' right=' + r.right.toFixed(1));
  }
  return {scrollWidth: document.documentElement.scrollWidth, clientWidth: cw,
          offenders: offenders.slice(0, 20), count: offenders.length};
})()
"""


def page_overflow(page: DevTools) -> dict[str, Any]:
    """Elements reaching past the page's client width outside a clipping (scroll) box.

    Returns ``scrollWidth``, ``clientWidth``, the first ``offenders`` and their ``count``.
    """
    return page.evaluate(OVERFLOW_JS)


LABELS_JS = r"""
(() => {
  const label = t => Array.from(t.childNodes).filter(n => n.nodeName !== 'title')
    .map(n => n.textContent).join('');
  const problems = [];
  let checked = 0;
  document.querySelectorAll('svg').forEach((svg, si) => {
    const s = svg.getBoundingClientRect();
    if (s.width === 0) return;
    const texts = Array.from(svg.querySelectorAll('text'))
      .map(t => ({t: label(t), r: t.getBoundingClientRect()}))
      .filter(x => x.r.width > 0 && x.t.trim() !== '');
    checked += texts.length;
    const tol = 0.5;
    for (const a of texts) {
      if (a.r.left < s.left - tol || a.r.right > s.right + tol ||
          a.r.top < s.top - tol || a.r.bottom > s.bottom + tol)
        problems.push(`svg ${si} (${svg.getAttribute('aria-label')}): "${a.t}" is cut off`);
    }
    for (let i = 0; i < texts.length; i++) for (let j = i + 1; j < texts.length; j++) {
      const a = texts[i].r, b = texts[j].r;
      if (a.left < b.right - tol && b.left < a.right - tol &&
          a.top < b.bottom - tol && b.top < a.bottom - tol)
        problems.push(`svg ${si} (${svg.getAttribute('aria-label')}): ` +
                      `"${texts[i].t}" overlaps "${texts[j].t}"`);
    }
  });
  return {checked: checked, problems: problems.slice(0, 30), count: problems.length};
})()
"""


def label_problems(page: DevTools) -> dict[str, Any]:
    """SVG texts (as rendered) that overlap another text of their chart or leave the chart.

    Returns ``checked`` (texts looked at), the first ``problems`` and their ``count``.
    """
    return page.evaluate(LABELS_JS)
