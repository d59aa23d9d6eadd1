"""`clipsep-rt serve`: live separation over WebSocket and whole files over HTTP, with a page.

    from clipsep_rt.api import Separator
    from clipsep_rt.serve import BackgroundServer, Limits, build_app

    separator = Separator.open(stream_latency="balanced")
    separator.load_query_encoder()
    with BackgroundServer(build_app(separator, Limits(max_sessions=4))) as server:
        ...  # clients connect to server.ws_url("/v1/stream")

Parts: protocol.py (messages, bounds, close codes; no web framework), client_stream.py (a
stream at the client's rate and channels), uploads.py (the upload folder and file jobs),
app.py (the Starlette app: sessions on a bounded thread pool), server.py (uvicorn), static/
(the page). Starlette, uvicorn, websockets and python-multipart are the `serve` extra,
imported when a server is built.
"""

from clipsep_rt.serve.app import build_app
from clipsep_rt.serve.protocol import PROTOCOL_VERSION, Limits
from clipsep_rt.serve.server import BackgroundServer, check_exposure, serve_forever

__all__ = ["PROTOCOL_VERSION", "BackgroundServer", "Limits", "build_app", "check_exposure", "serve_forever"]
