"""Running the app under uvicorn (its `websockets` implementation), in the foreground for the
command line or on a thread (`BackgroundServer`: tests, benchmarks, embedding in a program).

The WebSocket layer (uvicorn's sans-I/O `websockets` one) bounds a frame (`Limits.max_frame_bytes`:
larger frames close with 1009) and reads a connection's next frame only once the app has taken
the last one, and a send waits while the client's socket is full; `limit_concurrency` bounds the
connections uvicorn serves at once beyond the sessions (more get HTTP 503), so a flood of
connection attempts costs a refusal each.
"""

from __future__ import annotations

import socket
import threading
import time

from clipsep_rt.errors import ClipsepError
from clipsep_rt.optional import import_optional
from clipsep_rt.serve.protocol import Limits

LOOPBACK = ("127.0.0.1", "::1", "localhost")
EXTRA_CONNECTIONS = 64  # connections beyond max_sessions (health checks, uploads, refused sessions)


def check_exposure(host: str, token: str | None) -> None:
    """Any address but loopback needs a token: the server would otherwise take audio and
    files from anyone who reaches the port."""
    if host not in LOOPBACK and not token:
        raise ClipsepError(f"--host {host} exposes the server beyond this machine: give --token SECRET as well "
                           "(clients send it as ?token= or an Authorization: Bearer header; put TLS in front with "
                           "a reverse proxy)")


def uvicorn_config(app, host: str, port: int, limits: Limits, log_level: str = "warning"):
    uvicorn = import_optional("uvicorn", "serve")
    import_optional("websockets", "serve")
    return uvicorn.Config(
        app, host=host, port=port, ws="websockets-sansio", ws_max_size=limits.max_frame_bytes + 1024,
        ws_ping_interval=20.0, ws_ping_timeout=20.0, ws_per_message_deflate=False, limit_concurrency=limits.max_sessions + EXTRA_CONNECTIONS,
        timeout_keep_alive=5, timeout_graceful_shutdown=5, log_level=log_level, lifespan="on", h11_max_incomplete_event_size=64 * 1024,
    )


def serve_forever(app, host: str, port: int, limits: Limits) -> None:
    """Serve until SIGINT/SIGTERM (uvicorn's handlers: sessions closed); the pool and the
    upload folder go however it ends, a signal during start-up included."""
    uvicorn = import_optional("uvicorn", "serve")
    try:
        uvicorn.Server(uvicorn_config(app, host, port, limits, log_level="info")).run()
    finally:
        app.state.serve.close()


class BackgroundServer:
    """The app on a free loopback port, on a thread, for `with`:

        with BackgroundServer(build_app(separator)) as server:
            server.url("/health")          # http://127.0.0.1:PORT/health
            server.ws_url("/v1/stream")
    """

    def __init__(self, app, limits: Limits = Limits(), host: str = "127.0.0.1", port: int = 0, start_timeout_s: float = 30.0):
        uvicorn = import_optional("uvicorn", "serve")
        self.app = app
        self.host = host
        self.port = port or free_port(host)
        self.server = uvicorn.Server(uvicorn_config(app, host, self.port, limits))
        self.thread = threading.Thread(target=self.server.run, name="clipsep-serve", daemon=True)
        self.start_timeout_s = start_timeout_s

    def __enter__(self) -> BackgroundServer:
        self.thread.start()
        deadline = time.monotonic() + self.start_timeout_s
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise ClipsepError(f"the server did not start on {self.host}:{self.port}")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.app.state.serve.close()

    def url(self, path: str = "/") -> str:
        return f"http://{self.host}:{self.port}{path}"

    def ws_url(self, path: str = "/v1/stream") -> str:
        return f"ws://{self.host}:{self.port}{path}"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]
