"""`clipsep-rt serve` over a real loopback server (uvicorn on a thread, the `websockets` client):
the protocol (started, output per message, equality with the API's stream, query switch, stop,
stats), every refusal, a hostile client, and whole files over HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import io
import json
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("starlette")
websockets = pytest.importorskip("websockets")

from clipsep_rt.api import LatencyAligner, Separator  # noqa: E402
from clipsep_rt.cli.main import main  # noqa: E402
from clipsep_rt.io.resample import resample  # noqa: E402
from clipsep_rt.serve import PROTOCOL_VERSION, BackgroundServer, Limits, build_app  # noqa: E402

LIMITS = Limits(max_sessions=3, stats_interval_s=0.2, start_timeout_s=3, idle_timeout_s=10, send_queue=4,
                max_upload_bytes=4 * 1024 * 1024, max_file_s=30, result_ttl_s=60)


@pytest.fixture(scope="module")
def separator():
    separator = Separator.open(backend="openvino", threads=1, probe_cache=False)
    separator.load_query_encoder()
    return separator


@pytest.fixture(scope="module")
def server(separator, tmp_path_factory):
    app = build_app(separator, LIMITS, workers=2, upload_parent=tmp_path_factory.mktemp("uploads"))
    with BackgroundServer(app, LIMITS) as running:
        yield running


def mixture(seconds: float, rate: int = 16000, channels: int = 1, seed: int = 0) -> np.ndarray:
    """(n, channels) float32: tones and noise, a little different per channel."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    tone = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 1250 * t)
    return np.stack([tone + 0.05 * (c + 1) * rng.standard_normal(len(t)) for c in range(channels)], axis=1).astype(np.float32)


def start_message(rate=16000, channels=1, queries=("violin",), latency="balanced", **more) -> str:
    return json.dumps({"type": "start", "sample_rate": rate, "channels": channels, "queries": list(queries),
                       "latency": latency, **more})


async def next_binary(ws, texts: list | None = None) -> np.ndarray:
    """The next binary message as float32 (text messages on the way are kept in `texts`)."""
    while True:
        message = await asyncio.wait_for(ws.recv(), 20)
        if isinstance(message, bytes):
            return np.frombuffer(message, "<f4")
        if texts is not None:
            texts.append(json.loads(message))


async def next_text(ws) -> dict:
    while True:
        message = await asyncio.wait_for(ws.recv(), 20)
        if isinstance(message, str):
            return json.loads(message)


async def closing(ws) -> tuple[list[dict], int]:
    """The text messages until the server closes, and its close code."""
    texts = []
    try:
        while True:
            message = await asyncio.wait_for(ws.recv(), 20)
            if isinstance(message, str):
                texts.append(json.loads(message))
    except websockets.ConnectionClosed as closed:
        return texts, closed.rcvd.code if closed.rcvd else None


def run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, 60))


BLOCKS = [512, 300, 1000, 64, 2048, 700, 1600, 4000, 333, 512] * 3


def test_output_per_message_equals_the_api_stream(server, separator):
    audio = mixture(sum(BLOCKS) / 16000)[:, 0]

    async def session():
        async with websockets.connect(server.ws_url()) as ws:
            await ws.send(start_message())
            started = await next_text(ws)
            outputs, position = [], 0
            for size in BLOCKS:
                await ws.send(audio[position : position + size].tobytes())
                outputs.append(await next_binary(ws))
                position += size
            await ws.send(json.dumps({"type": "stop"}))
            tail = await next_binary(ws)
            stopped, code = await closing(ws)
            return started, outputs, tail, stopped, code

    started, outputs, tail, stopped, code = run(session())
    stream = separator.stream(["violin"], "balanced")
    assert started["type"] == "started" and started["version"] == PROTOCOL_VERSION
    assert started["latency_samples"] == stream.latency_samples and started["queries"] == ["violin"]
    assert [len(out) for out in outputs] == BLOCKS  # as many samples as sent, per message
    position, expected = 0, []
    for size in BLOCKS:
        expected.append(stream.process(audio[position : position + size])[0])
        position += size
    np.testing.assert_allclose(np.concatenate(outputs), np.concatenate(expected), atol=1e-6)
    assert len(tail) == stream.latency_samples
    np.testing.assert_allclose(tail, stream.flush()[0], atol=1e-6)
    assert stopped[-1]["type"] == "stopped" and stopped[-1]["stats"]["hops"] > 0 and code == 1000
    assert server.app.state.serve.sessions == 0


def test_other_rate_and_channels_are_delayed_by_the_reported_latency(server, separator):
    rate, channels, size = 44100, 2, 1024
    audio = mixture(3.0, rate, channels)

    async def session():
        async with websockets.connect(server.ws_url()) as ws:
            await ws.send(start_message(rate, channels))
            started = await next_text(ws)
            outputs = []
            for position in range(0, len(audio) - size + 1, size):
                await ws.send(audio[position : position + size].tobytes())
                outputs.append(await next_binary(ws))
            await ws.send(json.dumps({"type": "stop"}))
            outputs.append(await next_binary(ws))
            return started, outputs

    started, outputs = run(session())
    latency = started["latency_samples"]
    assert all(len(out) == size * channels for out in outputs[:-1]) and len(outputs[-1]) == latency * channels
    got = np.concatenate(outputs).reshape(-1, channels)  # (frames, C): the one query, interleaved
    # The reference: the API's stream at 16 kHz, aligned with its input, back at 44.1 kHz.
    sent = audio[: (len(audio) // size) * size]
    stream = separator.stream(["violin"], "balanced", channels=channels)
    aligner = LatencyAligner(stream)
    reference = np.concatenate([aligner.process(resample(sent, rate, 16000)), *aligner.flush()], axis=1)[0]
    reference = resample(reference, 16000, rate)  # (n, C)
    left, right = got[:, 0], reference[:, 0]
    span = slice(rate // 2, len(sent) - rate // 2)
    lags = range(latency - 40, latency + 41)
    scores = [np.dot(left[lag + span.start : lag + span.stop], right[span]) for lag in lags]
    assert abs(lags[int(np.argmax(scores))] - latency) <= 2
    aligned = left[latency + span.start : latency + span.stop]
    assert np.linalg.norm(aligned - right[span]) < 0.05 * np.linalg.norm(right[span])


def test_query_switch_and_stats(server, separator):
    audio = mixture(2.0)[:, 0]
    size, switch_at = 1600, 8

    async def session():
        async with websockets.connect(server.ws_url()) as ws:
            await ws.send(start_message())
            await next_text(ws)
            outputs, texts = [], []
            for index in range(len(audio) // size):
                if index == switch_at:
                    await ws.send(json.dumps({"type": "queries", "queries": ["dog barking", "speech"]}))
                    texts.append(await next_text(ws))
                await ws.send(audio[index * size : (index + 1) * size].tobytes())
                outputs.append(await next_binary(ws, texts))
                await asyncio.sleep(0.03)  # paced, so that stats come
            await ws.send(json.dumps({"type": "stop"}))
            await next_binary(ws)
            rest, _ = await closing(ws)
            return outputs, texts + rest

    outputs, texts = run(session())
    assert [len(out) for out in outputs] == [size] * switch_at + [2 * size] * (len(outputs) - switch_at)
    assert {"type": "queries", "queries": ["dog barking", "speech"]} in texts
    stream = separator.stream(["violin"], "balanced")
    expected = []
    for index in range(len(outputs)):
        if index == switch_at:
            stream.set_queries(["dog barking", "speech"])
        rows = stream.process(audio[index * size : (index + 1) * size])
        expected.append(rows[:2].reshape(-1) if index >= switch_at else rows[0])
    np.testing.assert_allclose(np.concatenate(outputs), np.concatenate(expected), atol=1e-6)
    stats = [text for text in texts if text["type"] == "stats"]
    assert stats, texts
    assert {"latency_ms", "hop_compute_p50_ms", "hop_compute_p99_ms", "overruns"} <= set(stats[-1])
    assert texts[-1]["type"] == "stopped"


@pytest.mark.parametrize("rate, channels", [(48000, 1), (8000, 3), (192000, 2)])
def test_client_stream_returns_as_many_frames_as_it_takes_at_any_rate(separator, rate, channels):
    from clipsep_rt.serve.client_stream import ClientStream

    stream = separator.stream(["violin"], "low", channels=None if channels == 1 else channels)
    client = ClientStream(stream, rate, channels, queries=1, max_rows=2)
    assert client.latency_samples == client.holdback + round(stream.latency_samples * rate / 16000)
    audio = mixture(1.0, rate, channels)
    sizes = np.random.default_rng(2).integers(1, rate // 50, 400)
    position = 0
    for size in sizes:
        out = client.process(audio[position : position + size] if position + size <= len(audio) else audio[:size])
        assert out.shape == (1, size, channels) and out.dtype == np.float32
        position += size
    assert client.flush().shape == (1, client.latency_samples, channels)
    assert client.short_frames == 0  # the primed FIFO absorbed what the resamplers held back


async def refused_at_start(url: str, *messages) -> tuple[list[dict], int]:
    async with websockets.connect(url) as ws:
        for message in messages:
            try:
                await ws.send(message)
            except websockets.ConnectionClosed:  # refused before it was sent: the answer is still read
                break
        return await closing(ws)


@pytest.mark.parametrize("message, words", [
    ("{not json", "JSON"),
    (json.dumps({"type": "hello"}), "start"),
    (b"\x00" * 64, "before the start"),
    (start_message(rate=4000), "sample_rate"),
    (start_message(rate=44100.5), "sample_rate"),
    (start_message(channels=9), "channels"),
    (start_message(queries=["x" * 201]), "characters"),
    (start_message(queries=["a", "b", "c", "d", "e"]), "at most"),
    (start_message(queries=[]), "at least one"),
    (start_message(latency="instant"), "latency"),
])
def test_a_bad_start_is_refused_with_one_line_and_a_close(server, message, words):
    texts, code = run(refused_at_start(server.ws_url(), message))
    assert len(texts) == 1 and texts[0]["type"] == "error" and words in texts[0]["message"], texts
    assert "\n" not in texts[0]["message"] and code == 1008


def test_bad_messages_after_start_are_refused_and_the_session_goes_on(server):
    async def session():
        async with websockets.connect(server.ws_url()) as ws:
            await ws.send(start_message())
            await next_text(ws)
            errors = []
            for bad in ("{oops", json.dumps({"type": "rewind"}), json.dumps({"type": "queries", "queries": "violin"}),
                        json.dumps({"type": "start"}), np.zeros(16001, np.float32).tobytes(), b"\x00\x00\x00",
                        np.array([np.nan] * 4, np.float32).tobytes()):
                await ws.send(bad)
                errors.append(await next_text(ws))
            await ws.send(np.zeros(256, np.float32).tobytes())
            return errors, await next_binary(ws)

    errors, out = run(session())
    assert [error["type"] for error in errors] == ["error"] * 7
    assert "JSON" in errors[0]["message"] and "rewind" in errors[1]["message"] and "at most 16000" in errors[4]["message"]
    assert len(out) == 256


def test_a_frame_over_the_limit_closes_with_1009(server):
    async def session():
        async with websockets.connect(server.ws_url(), max_size=None) as ws:
            await ws.send(start_message())
            await next_text(ws)
            try:
                await ws.send(b"\x00" * (LIMITS.max_frame_bytes + 4096))
            except websockets.ConnectionClosed as closed:  # closed while the frame was going out
                return [], closed.rcvd.code
            return await closing(ws)

    _, code = run(session())
    assert code == 1009


def test_too_many_sessions_are_refused_with_1013(server):
    async def session():
        opened = [await websockets.connect(server.ws_url()) for _ in range(LIMITS.max_sessions)]
        for ws in opened:
            await ws.send(start_message())
            await next_text(ws)
        texts, code = await refused_at_start(server.ws_url(), start_message())
        for ws in opened:
            await ws.close()
        return texts, code

    texts, code = run(session())
    assert code == 1013 and "sessions are open" in texts[0]["message"]
    deadline = time.monotonic() + 5
    while server.app.state.serve.sessions and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.app.state.serve.sessions == 0


def test_a_token_is_required_when_set_and_off_loopback(separator, capsys):
    assert main(["serve", "--host", "0.0.0.0"]) == 2
    assert "--token" in capsys.readouterr().err
    app = build_app(separator, LIMITS, token="s3cret")
    with BackgroundServer(app, LIMITS) as running:
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(running.url("/health"), timeout=10)
        assert refused.value.code == 401 and "token" in json.loads(refused.value.read())["message"]
        request = urllib.request.Request(running.url("/health"), headers={"Authorization": "Bearer s3cret"})
        assert json.loads(urllib.request.urlopen(request, timeout=10).read())["status"] == "ok"
        texts, code = run(refused_at_start(running.ws_url(), start_message()))
        assert code == 1008 and "token" in texts[0]["message"]

        async def with_token():
            async with websockets.connect(running.ws_url("/v1/stream?token=s3cret")) as ws:
                await ws.send(start_message())
                return await next_text(ws)

        assert run(with_token())["type"] == "started"


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


async def normal_session(url: str) -> int:
    async with websockets.connect(url) as ws:
        await ws.send(start_message())
        await next_text(ws)
        for _ in range(10):
            await ws.send(np.zeros(1600, np.float32).tobytes())
            assert len(await next_binary(ws)) == 1600
        await ws.send(json.dumps({"type": "stop"}))
        return len(await next_binary(ws))


async def wait_for_no_sessions(server, seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while server.app.state.serve.sessions and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert server.app.state.serve.sessions == 0


async def hostile(server) -> bool:
    """Garbage, abrupt disconnects, a slow reader and 1,000 quick connection attempts (as the issue asks); returns
    whether the slow reader's session was freed while it held its connection."""
    url = server.ws_url()
    rng = np.random.default_rng(1)
    for _ in range(10):  # garbage before and after a start (refusals of a full server included)
        with contextlib.suppress(websockets.ConnectionClosed):
            async with websockets.connect(url) as ws:
                await ws.send(rng.bytes(int(rng.integers(1, 5000))))
                await closing(ws)
        with contextlib.suppress(websockets.ConnectionClosed):
            async with websockets.connect(url) as ws:
                await ws.send(start_message())
                await next_text(ws)
                await ws.send("\x00garbage" * 50)
                await ws.send(rng.bytes(4001))
                ws.transport.abort()  # abrupt disconnect, no close frame
    for _ in range(5):  # abrupt disconnects mid-block, before the start is answered
        with contextlib.suppress(websockets.ConnectionClosed):
            async with websockets.connect(url) as ws:
                await ws.send(start_message(rate=48000, channels=2))
                await ws.send(np.zeros((48000, 2), np.float32).tobytes())
                ws.transport.abort()
    await wait_for_no_sessions(server)
    # A slow reader: sends a lot, reads nothing. Its session is closed (the slot and the stream freed)
    # while it still holds the connection, rather than its output buffered without end.
    async with websockets.connect(url, max_queue=1, max_size=None) as ws:
        await ws.send(start_message(channels=8, queries=["a", "b", "c", "d"]))
        block = np.zeros((16000, 8), np.float32).tobytes()
        with contextlib.suppress(TimeoutError, websockets.ConnectionClosed):
            for _ in range(100):
                await asyncio.wait_for(ws.send(block), 3)  # the server stops reading a session it has given up on
        await wait_for_no_sessions(server)
        freed = server.app.state.serve.sessions == 0
        ws.transport.abort()
    for attempt in range(1000):  # quick connection attempts: TCP open/close, a bare upgrade, TLS bytes
        with socket.create_connection((server.host, server.port), timeout=5) as raw:
            raw.sendall(b"GET /v1/stream HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n" if attempt % 2
                        else b"\x16\x03\x01garbage")
    return freed


def test_hostile_clients_leave_the_service_and_its_memory_as_they_were(server):
    url = server.ws_url()
    run(normal_session(url))  # warm: the first sessions allocate what later ones reuse
    run(normal_session(url))
    before = rss_bytes()
    assert asyncio.run(asyncio.wait_for(hostile(server), 120))  # the slow reader's session freed
    asyncio.run(wait_for_no_sessions(server))
    assert run(normal_session(url)) == 4863
    after = rss_bytes()
    assert after < 1.10 * before, f"RSS {before / 2**20:.0f} MiB -> {after / 2**20:.0f} MiB"


def multipart(fields: list[tuple[str, str]], file: tuple[str, bytes]) -> tuple[bytes, str]:
    boundary = "clipsepboundary7f3a"
    body = io.BytesIO()
    for name, value in fields:
        body.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    body.write(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{file[0]}"\r\n'
               "Content-Type: audio/wav\r\n\r\n".encode() + file[1] + b"\r\n")
    body.write(f"--{boundary}--\r\n".encode())
    return body.getvalue(), f"multipart/form-data; boundary={boundary}"


def post(url: str, body: bytes, content_type: str) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": content_type}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_a_file_is_separated_over_http_and_its_folder_cleaned(separator, tmp_path):
    audio = mixture(1.5, 22050, 2)
    wav = io.BytesIO()
    sf.write(wav, audio, 22050, format="WAV", subtype="PCM_16")
    app = build_app(separator, LIMITS, upload_parent=tmp_path)
    with BackgroundServer(app, LIMITS) as running:
        root = app.state.serve.uploads.root
        status, answer = post(running.url("/v1/separate"), *multipart([("query", "violin"), ("query", "speech")],
                                                                      ("take 1.wav", wav.getvalue())))
        assert status == 200, answer
        assert [result["query"] for result in answer["results"]] == ["violin", "speech"]
        assert answer["sample_rate"] == 22050 and answer["channels"] == 2
        for result in answer["results"]:
            with urllib.request.urlopen(running.url(result["url"]), timeout=10) as response:
                samples, rate = sf.read(io.BytesIO(response.read()))
            assert rate == 22050 and samples.shape == audio.shape
        assert sorted(path.name for path in (root / answer["id"]).iterdir()) == ["1-violin.wav", "2-speech.wav"]
        request = urllib.request.Request(running.url(f"/v1/results/{answer['id']}"), method="DELETE")
        assert json.loads(urllib.request.urlopen(request, timeout=10).read()) == {"deleted": True}
        assert not (root / answer["id"]).exists()
        with pytest.raises(urllib.error.HTTPError) as gone:
            urllib.request.urlopen(running.url(answer["results"][0]["url"]), timeout=10)
        assert gone.value.code == 404
        # refusals: too large, no file, not audio
        connection = http.client.HTTPConnection(running.host, running.port, timeout=10)
        connection.putrequest("POST", "/v1/separate")  # refused from its headers, before the body is read
        connection.putheader("Content-Type", "multipart/form-data; boundary=x")
        connection.putheader("Content-Length", str(LIMITS.max_upload_bytes + 1))
        connection.endheaders()
        response = connection.getresponse()
        assert response.status == 413 and "larger than" in json.loads(response.read())["message"]
        connection.close()
        status, answer = post(running.url("/v1/separate"), b"query=violin", "application/x-www-form-urlencoded")
        assert status == 400 and "multipart" in answer["message"]
        status, answer = post(running.url("/v1/separate"), *multipart([("query", "violin")], ("notes.wav", b"not audio")))
        assert status == 400 and answer["type"] == "error"
        assert list(root.iterdir()) == []  # refused uploads leave nothing behind
    assert not root.exists() and list(tmp_path.iterdir()) == []  # the upload folder goes at shutdown


def test_health_and_page(server):
    health = json.loads(urllib.request.urlopen(server.url("/health"), timeout=10).read())
    assert health["status"] == "ok" and health["version"] == PROTOCOL_VERSION and health["max_sessions"] == 3
    page = urllib.request.urlopen(server.url("/"), timeout=10).read().decode()
    assert "app.js" in page
    script = urllib.request.urlopen(server.url("/static/app.js"), timeout=10).read().decode()
    assert "/v1/stream" in script and "/v1/separate" in script
