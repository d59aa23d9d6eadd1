"""The page of `clipsep-rt serve` in a real browser: headless Chromium with a fake microphone fed
from a WAV, driven over the DevTools protocol. Separated audio must come back, delayed by the
latency the server reported; a screenshot of the page is saved in the test's tmp dir."""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import subprocess
import time
import urllib.request

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("starlette")
websockets = pytest.importorskip("websockets")

from clipsep_rt.api import Separator  # noqa: E402
from clipsep_rt.serve import BackgroundServer, Limits, build_app  # noqa: E402
from clipsep_rt.serve.server import free_port  # noqa: E402

BROWSER = shutil.which("chromium") or shutil.which("chromium-browser")
SECONDS = 6.0  # separated audio to wait for


def fake_microphone(path, rate: int = 48000, seconds: float = 14.0) -> None:
    """Noise and tone bursts of random lengths: an envelope whose delay is unambiguous."""
    rng = np.random.default_rng(3)
    signal = np.zeros(int(seconds * rate), np.float32)
    position = 0
    while position < len(signal):
        on, off = int(rng.uniform(0.05, 0.3) * rate), int(rng.uniform(0.05, 0.4) * rate)
        t = np.arange(on) / rate
        burst = 0.3 * np.sin(2 * np.pi * rng.uniform(200, 2000) * t) + 0.15 * rng.standard_normal(on)
        signal[position : position + on] = burst[: len(signal) - position]
        position += on + off
    sf.write(path, signal, rate, subtype="PCM_16")


async def devtools(port: int, timeout: float) -> object:
    """The page target's DevTools WebSocket."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=2) as response:
                pages = [target for target in json.loads(response.read()) if target["type"] == "page"]
            if pages:
                return await websockets.connect(pages[0]["webSocketDebuggerUrl"], max_size=None)
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError("chromium's DevTools did not come up")
        await asyncio.sleep(0.2)


class Page:
    def __init__(self, ws):
        self.ws, self.next_id = ws, 0

    async def call(self, method: str, **params) -> dict:
        self.next_id += 1
        await self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            reply = json.loads(await asyncio.wait_for(self.ws.recv(), 20))
            if reply.get("id") == self.next_id:
                return reply.get("result", {})

    async def evaluate(self, expression: str):
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")


async def drive(port: int, shot) -> tuple[dict, float]:
    page = Page(await devtools(port, 15))
    try:
        deadline = time.monotonic() + 20
        while True:
            counters = json.loads(await page.evaluate("JSON.stringify(window.clipsep || {})") or "{}")
            if counters.get("errors") or counters.get("receivedFrames", 0) >= SECONDS * (counters.get("sampleRate") or 1e9):
                break
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.25)
        delay = await page.evaluate("window.clipsep.measureDelay()")
        picture = await page.call("Page.captureScreenshot", format="png")
        shot.write_bytes(base64.b64decode(picture["data"]))
        return counters, delay
    finally:
        await page.ws.close()


@pytest.mark.skipif(BROWSER is None, reason="no chromium on PATH (apt-get install chromium)")
def test_the_page_separates_a_fake_microphone_with_the_reported_latency(tmp_path):
    microphone = tmp_path / "microphone.wav"
    fake_microphone(microphone)
    separator = Separator.open(backend="openvino", threads=1, probe_cache=False)
    separator.load_query_encoder()
    limits = Limits(max_sessions=2)
    port = free_port()
    with BackgroundServer(build_app(separator, limits), limits) as server:
        command = [BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--use-fake-ui-for-media-stream",
                   "--use-fake-device-for-media-stream", f"--use-file-for-fake-audio-capture={microphone}",
                   "--autoplay-policy=no-user-gesture-required", f"--remote-debugging-port={port}",
                   f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,1000",
                   server.url("/?autostart=1&q=-speech&latency=balanced")]
        browser = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            counters, delay = asyncio.run(asyncio.wait_for(drive(port, tmp_path / "page.png"), 50))
        finally:
            browser.terminate()
            try:
                browser.wait(10)
            except subprocess.TimeoutExpired:
                browser.kill()
    print(f"screenshot: {tmp_path / 'page.png'}")
    assert not counters["errors"], counters["errors"]
    assert counters["started"] and counters["queries"] == ["all but speech"]
    assert counters["receivedFrames"] >= SECONDS * counters["sampleRate"]
    assert counters["outputEnergy"] > 1.0  # separated sound, not silence
    assert abs(delay - counters["latencyMs"]) <= 20, (delay, counters["latencyMs"])
    assert (tmp_path / "page.png").stat().st_size > 10_000
