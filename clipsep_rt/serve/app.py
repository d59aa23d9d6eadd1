"""The ASGI application of `clipsep-rt serve` (Starlette): one model, many sessions.

    GET  /                      the page (static/index.html: microphone, queries, spectrograms, uploads)
    GET  /health                200 {"status": "ok", "version", "model", ...} once the model is loaded
    WS   /v1/stream             a streaming session (protocol.py; README, "Serve")
    POST /v1/separate           multipart upload ("file", "query"...) -> {"results": [{"query", "url"}]}
    GET  /v1/results/ID/NAME    a result WAV (until deleted or expired)
    DELETE /v1/results/ID       delete a job's results now

One `api.Separator` is shared by every session; each session has its own stream
(`client_stream.ClientStream`). Network work runs on a bounded thread pool, never on the
event loop; a session hands its blocks to the pool one at a time, in order. Output goes
through a bounded send queue: a client that does not read its output fills it, and its
session closes (1008) instead of the server buffering without end. A `token`, when set,
is required of every request but the page and its static files (`?token=` or
`Authorization: Bearer`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from clipsep_rt import __version__
from clipsep_rt.api import Separator
from clipsep_rt.errors import ClipsepError
from clipsep_rt.optional import import_optional
from clipsep_rt.serve.client_stream import ClientStream
from clipsep_rt.serve.protocol import (CLOSE_NORMAL, CLOSE_POLICY, CLOSE_SERVER_ERROR, CLOSE_TRY_LATER,
                                       PROTOCOL_VERSION, Limits, ProtocolError, encode, parse_block, parse_queries,
                                       parse_start, parse_text)
from clipsep_rt.serve.uploads import UploadStore

logger = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
MAX_FILE_JOBS = 2  # uploads separated at once; more are told to try again


@dataclass
class ServerState:
    """What the sessions share: the model, the pool, the counts."""

    separator: Separator
    limits: Limits
    pool: ThreadPoolExecutor
    uploads: UploadStore
    token: str | None
    sessions: int = 0
    sessions_total: int = 0
    file_jobs: int = 0

    def close(self) -> None:
        """Stop the pool and remove the upload folder (at shutdown; again is harmless)."""
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.uploads.close()

    def authorized(self, headers, query_params) -> bool:
        if self.token is None:
            return True
        given = query_params.get("token", "")
        bearer = headers.get("authorization", "")
        if bearer.lower().startswith("bearer "):
            given = bearer[7:].strip()
        return hmac.compare_digest(given.encode(), self.token.encode())


def build_app(separator: Separator, limits: Limits = Limits(), token: str | None = None, workers: int = 2,
              upload_parent: Path | None = None):
    """The Starlette app serving `separator` (opened, its query encoder loaded by the caller).
    The upload folder is made now and removed, with the pool, when the app shuts down."""
    import_optional("starlette", "serve")
    from starlette.applications import Starlette
    from starlette.responses import FileResponse, JSONResponse, Response
    from starlette.routing import Mount, Route, WebSocketRoute
    from starlette.staticfiles import StaticFiles

    state = ServerState(separator, limits, ThreadPoolExecutor(max(1, workers), thread_name_prefix="clipsep-serve"),
                        UploadStore(limits, upload_parent), token)

    def refused(message: str, status: int) -> JSONResponse:
        return JSONResponse({"type": "error", "message": message}, status_code=status)

    async def page(request) -> Response:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    async def health(request) -> Response:
        if not state.authorized(request.headers, request.query_params):
            return refused("missing or wrong token", 401)
        backend = separator.backend
        return JSONResponse({
            "status": "ok", "version": PROTOCOL_VERSION, "clipsep_rt": __version__, "model": Path(separator.name).name,
            "backend": backend.name if backend else None, "device": separator.device, "sample_rate": separator.sample_rate,
            "sessions": state.sessions, "max_sessions": limits.max_sessions, "limits": _public_limits(limits),
        })

    async def separate_file(request) -> Response:
        if not state.authorized(request.headers, request.query_params):
            return refused("missing or wrong token", 401)
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limits.max_upload_bytes):
            return refused(f"upload larger than {limits.max_upload_bytes} bytes", 413)
        if state.file_jobs >= MAX_FILE_JOBS:
            return refused(f"{MAX_FILE_JOBS} files are being separated: try again later", 503)
        state.file_jobs += 1
        job = state.uploads.new_job()
        try:
            upload = await state.uploads.receive(job, request.headers.get("content-type", ""), request.stream())
            texts = [*upload.queries, *upload.exclude]
            if max(len(upload.queries), len(upload.exclude)) > limits.max_queries or any(
                    len(text) > limits.max_query_chars for text in texts):
                raise ProtocolError(f"at most {limits.max_queries} queries and {limits.max_queries} exclusions, "
                                    f"of {limits.max_query_chars} characters each")
            done = await asyncio.get_running_loop().run_in_executor(state.pool, state.uploads.separate, separator, job, upload)
        except (ProtocolError, ClipsepError) as error:
            state.uploads.remove(job.id)
            status = 413 if "larger than" in str(error) else 400
            return refused(str(error).splitlines()[0], status)
        except Exception as error:  # noqa: BLE001 - one line to the client, the traceback to the log
            logger.exception("file job failed")
            state.uploads.remove(job.id)
            return refused(f"server error: {type(error).__name__}: {error}".splitlines()[0], 500)
        finally:
            state.file_jobs -= 1
        suffix = f"?token={state.token}" if state.token else ""
        results = [{"query": label, "url": f"/v1/results/{job.id}/{name}{suffix}"} for label, name in done["outputs"]]
        return JSONResponse({"type": "separated", "version": PROTOCOL_VERSION, "id": job.id, "filename": upload.filename,
                             "sample_rate": done["sample_rate"], "channels": done["channels"],
                             "duration_s": round(done["duration_s"], 3), "expires_in_s": limits.result_ttl_s,
                             "results": results})

    async def result(request) -> Response:
        if not state.authorized(request.headers, request.query_params):
            return refused("missing or wrong token", 401)
        path = state.uploads.result(request.path_params["job"], request.path_params["name"])
        if path is None or not path.is_file():
            return refused("no such result (deleted, or expired after its time to live)", 404)
        return FileResponse(path, media_type="audio/wav")

    async def delete_job(request) -> Response:
        if not state.authorized(request.headers, request.query_params):
            return refused("missing or wrong token", 401)
        return JSONResponse({"deleted": state.uploads.remove(request.path_params["job"])})

    async def stream(websocket) -> None:
        await Session(state, websocket).run()

    @contextlib.asynccontextmanager
    async def lifespan(app):
        try:
            yield
        finally:
            state.close()

    app = Starlette(routes=[
        Route("/", page), Route("/health", health), Route("/v1/separate", separate_file, methods=["POST"]),
        Route("/v1/results/{job}/{name}", result, methods=["GET"]), Route("/v1/results/{job}", delete_job, methods=["DELETE"]),
        WebSocketRoute("/v1/stream", stream), Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ], lifespan=lifespan)
    app.state.serve = state
    return app


def _public_limits(limits: Limits) -> dict:
    return {"sample_rate": [limits.min_rate, limits.max_rate], "channels": [1, limits.max_channels],
            "max_block_s": limits.max_block_s, "max_queries": limits.max_queries,
            "max_query_chars": limits.max_query_chars, "max_upload_bytes": limits.max_upload_bytes,
            "max_file_s": limits.max_file_s}


class Session:
    """One WebSocket client: start, blocks, query switches, stop (protocol.py)."""

    def __init__(self, state: ServerState, websocket):
        self.state = state
        self.limits = state.limits
        self.websocket = websocket
        self.client: ClientStream | None = None
        self.outbox: asyncio.Queue = asyncio.Queue(self.limits.send_queue)
        self.messages = 0
        self.round_trip_ms: list[float] = []  # server-side: message received -> output queued (bounded below)
        self.last_stats = 0.0
        self.sender: asyncio.Task | None = None

    async def run(self) -> None:
        from starlette.websockets import WebSocketDisconnect

        state = self.state
        await self.websocket.accept()
        if not state.authorized(self.websocket.headers, self.websocket.query_params):
            await self._refuse("missing or wrong token", CLOSE_POLICY)
            return
        if state.sessions >= self.limits.max_sessions:
            await self._refuse(f"{self.limits.max_sessions} sessions are open: try again later", CLOSE_TRY_LATER)
            return
        state.sessions += 1
        state.sessions_total += 1
        self.sender = asyncio.create_task(self._send_loop())
        try:
            await self._session()
        except WebSocketDisconnect:
            pass
        except ProtocolError as error:  # fatal: tell and close
            await self._close_with(error.message, error.close_code or CLOSE_POLICY)
        except Exception as error:  # noqa: BLE001 - a session's failure must not reach the server
            logger.exception("session failed")
            await self._close_with(f"server error: {type(error).__name__}: {error}".splitlines()[0], CLOSE_SERVER_ERROR)
        finally:
            state.sessions -= 1
            await self._stop_sender()

    async def _session(self) -> None:
        start = await self._receive(self.limits.start_timeout_s)
        if start.get("bytes") is not None:
            raise ProtocolError("binary audio before the start message", CLOSE_POLICY)
        message = parse_text(start.get("text") or "", self.limits)
        if message["type"] != "start":
            raise ProtocolError(f'expected {{"type": "start", ...}} first, got type {message["type"]!r}', CLOSE_POLICY)
        try:
            self.client = await self._run(self._open, message)
        except ProtocolError as error:
            raise ProtocolError(error.message, CLOSE_POLICY) from None
        client = self.client
        self._queue(encode({
            "type": "started", "version": PROTOCOL_VERSION, "latency_samples": client.latency_samples,
            "latency_ms": round(client.latency_ms, 3), "sample_rate": client.rate, "channels": client.channels,
            "queries": list(client.stream.query_names), "hop_samples": round(client.stream.hop_samples * client.rate / client.stream.sample_rate),
            "algorithmic_latency_ms": round(client.stream.latency_ms, 3), "resampling_holdback_samples": client.holdback,
            "limits": _public_limits(self.limits),
        }))
        self.last_stats = time.monotonic()
        while True:
            received = await self._receive(self.limits.idle_timeout_s)
            arrived = time.perf_counter()
            try:
                if received.get("bytes") is not None:
                    block = parse_block(received["bytes"], client.rate, client.channels, self.limits)
                    out = await self._run(self._process, block)  # (Q, n, C)
                    self._queue(out.astype("<f4").tobytes())
                    self.messages += 1
                    self.round_trip_ms.append(1000 * (time.perf_counter() - arrived))
                    del self.round_trip_ms[:-1000]
                    if time.monotonic() - self.last_stats >= self.limits.stats_interval_s:
                        self.last_stats = time.monotonic()
                        self._queue(encode({"type": "stats", **self._stats()}))
                    continue
                message = parse_text(received.get("text") or "", self.limits)
                if message["type"] == "queries":
                    queries, exclude = parse_queries(message, self.limits)
                    names = await self._run(self._switch, queries, exclude)
                    self._queue(encode({"type": "queries", "queries": names}))
                elif message["type"] == "stop":
                    tail = await self._run(self._flush)
                    if tail.shape[1]:
                        self._queue(tail.astype("<f4").tobytes())
                    self._queue(encode({"type": "stopped", "stats": self._stats()}))
                    self._queue(None)  # then close normally
                    with contextlib.suppress(asyncio.TimeoutError, Exception):
                        await asyncio.wait_for(asyncio.shield(self.sender), self.limits.start_timeout_s)
                    return
                elif message["type"] == "start":
                    raise ProtocolError("this session has started already")
                else:
                    raise ProtocolError(f"unknown message type {message['type']!r}: expected queries or stop")
            except ProtocolError as error:
                if error.close_code is not None:
                    raise
                self._queue(encode({"type": "error", "message": error.message}))

    async def _receive(self, timeout: float) -> dict:
        from starlette.websockets import WebSocketDisconnect

        try:
            message = await asyncio.wait_for(self.websocket.receive(), timeout)
        except asyncio.TimeoutError:
            raise ProtocolError(f"no message for {timeout:g} s: closing", CLOSE_POLICY) from None
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(message.get("code", 1000))
        return message

    async def _run(self, function, *args):
        """`function(*args)` on the pool, this session's calls one after another."""
        return await asyncio.get_running_loop().run_in_executor(self.state.pool, function, *args)

    # -- on the pool ----------------------------------------------------------------------

    def _open(self, message: dict) -> ClientStream:
        start = parse_start(message, self.limits)
        separator = self.state.separator
        try:
            queries = separator.queries(start.queries, exclude=start.exclude)
            stream = separator.stream(queries, latency=start.latency, channels=None if start.channels == 1 else start.channels)
        except ClipsepError as error:
            raise ProtocolError(str(error).splitlines()[0]) from None
        client = ClientStream(stream, start.sample_rate, start.channels, len(queries.labels), self.limits.max_queries)
        stream.warm_up()
        return client

    def _process(self, block: np.ndarray) -> np.ndarray:
        return self.client.process(block)

    def _switch(self, queries: list[str], exclude: list[str]) -> list[str]:
        try:
            prepared = self.state.separator.queries(queries, exclude=exclude)
        except ClipsepError as error:
            raise ProtocolError(str(error).splitlines()[0]) from None
        if len(prepared.labels) > self.client.max_rows:
            raise ProtocolError(f"at most {self.client.max_rows} outputs per session")
        self.client.set_queries(prepared, len(prepared.labels))
        return prepared.labels

    def _flush(self) -> np.ndarray:
        return self.client.flush()

    def _stats(self) -> dict:
        stats = self.client.stream.stats
        trips = np.array(self.round_trip_ms) if self.round_trip_ms else np.zeros(1)
        return {
            "latency_samples": self.client.latency_samples, "latency_ms": round(self.client.latency_ms, 3),
            "hop_ms": round(1000 * stats.hop_s, 3), "hops": len(stats.steps),
            "hop_compute_p50_ms": round(stats.percentile_ms(50), 3) if stats.steps else None,
            "hop_compute_p99_ms": round(stats.percentile_ms(99), 3) if stats.steps else None,
            "overruns": stats.overruns, "startup_ms": round(1000 * (stats.startup_s or 0), 3),
            "messages": self.messages, "server_p50_ms": round(float(np.percentile(trips, 50)), 3),
            "server_p99_ms": round(float(np.percentile(trips, 99)), 3), "short_frames": self.client.short_frames,
            "sessions": self.state.sessions,
        }

    # -- sending ----------------------------------------------------------------------------

    def _queue(self, item: str | bytes | None) -> None:
        """Queue an output message; a full queue means the client does not read: close."""
        try:
            self.outbox.put_nowait(item)
        except asyncio.QueueFull:
            raise ProtocolError(f"the client read none of its last {self.limits.send_queue} messages: closing",
                                CLOSE_POLICY) from None

    async def _send_loop(self) -> None:
        while True:
            item = await self.outbox.get()
            if item is None:
                await self.websocket.close(CLOSE_NORMAL)
                return
            if isinstance(item, bytes):
                await self.websocket.send_bytes(item)
            else:
                await self.websocket.send_text(item)

    async def _stop_sender(self) -> None:
        if self.sender is not None:
            self.sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.sender

    async def _refuse(self, message: str, code: int) -> None:
        with contextlib.suppress(Exception):
            await self.websocket.send_text(encode({"type": "error", "message": message}))
            await self.websocket.close(code)

    async def _close_with(self, message: str, code: int) -> None:
        """A fatal error: what is queued is dropped, the error sent, the socket closed."""
        await self._stop_sender()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._refuse(message, code), 2.0)

