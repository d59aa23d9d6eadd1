"""The streaming protocol's messages and bounds, free of any web framework.

Text messages are JSON objects with a "type"; binary messages are float32 little-endian
frames, interleaved by channel. A message the server refuses raises `ProtocolError`: its
one-line message goes back as {"type": "error", "message": ...}, and, where the session
cannot go on, the WebSocket closes with its `close_code` (1008 policy violation, 1011 server
failure, 1013 try again later; a frame over `max_frame_bytes` is closed with 1009 by the
WebSocket layer itself). See the README's "Serve" section.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from clipsep_rt.runtime.streaming_presets import PRESETS

PROTOCOL_VERSION = 1  # in `started` and /health; raised only by changes that break clients

CLOSE_NORMAL = 1000
CLOSE_POLICY = 1008  # a message or setting the server refuses, or a wrong token
CLOSE_SERVER_ERROR = 1011
CLOSE_TRY_LATER = 1013  # too many sessions


class ProtocolError(Exception):
    """A refused message: `message` goes to the client; `close_code` None keeps the session."""

    def __init__(self, message: str, close_code: int | None = None):
        super().__init__(message)
        self.message = message
        self.close_code = close_code


@dataclass(frozen=True)
class Limits:
    """What one client may ask for; every refusal names the bound."""

    min_rate: int = 8000
    max_rate: int = 192000
    max_channels: int = 8
    max_block_s: float = 1.0  # audio per binary message
    max_queries: int = 4  # per session: each costs a row of network output
    max_query_chars: int = 200
    max_text_bytes: int = 16384  # a JSON control message
    max_sessions: int = 8
    send_queue: int = 32  # output messages waiting for a slow reader before its session closes
    start_timeout_s: float = 10.0  # from connecting to the start message
    idle_timeout_s: float = 60.0  # between messages of a session
    stats_interval_s: float = 1.0
    max_upload_bytes: int = 64 * 1024 * 1024
    max_file_s: float = 600.0  # audio per uploaded file
    result_ttl_s: float = 600.0  # uploaded files' results are deleted after this
    max_jobs: int = 32  # file results kept at once (the oldest go first)

    @property
    def max_frame_bytes(self) -> int:
        """The largest binary message any allowed session may send (the WebSocket limit)."""
        return int(self.max_block_s * self.max_rate) * self.max_channels * 4


@dataclass(frozen=True)
class Start:
    sample_rate: int
    channels: int
    queries: list[str]
    exclude: list[str]
    latency: str


def parse_text(text: str, limits: Limits) -> dict:
    """A text message -> its JSON object (with a string "type")."""
    if len(text.encode()) > limits.max_text_bytes:
        raise ProtocolError(f"text message of {len(text.encode())} bytes: at most {limits.max_text_bytes}")
    try:
        message = json.loads(text)
    except ValueError as error:
        raise ProtocolError(f"text messages are JSON objects: {error}") from None
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise ProtocolError('text messages are JSON objects with a "type" string')
    return message


def parse_start(message: dict, limits: Limits) -> Start:
    """{"type": "start", "sample_rate", "channels", "queries", ["exclude"], ["latency"]} -> Start."""
    rate = _integer(message, "sample_rate", limits.min_rate, limits.max_rate)
    channels = _integer(message, "channels", 1, limits.max_channels, default=1)
    latency = message.get("latency", "balanced")
    if latency not in PRESETS:
        raise ProtocolError(f"latency {latency!r}: expected one of {', '.join(PRESETS)}")
    queries, exclude = parse_queries(message, limits)
    return Start(rate, channels, queries, exclude, latency)


def parse_queries(message: dict, limits: Limits) -> tuple[list[str], list[str]]:
    """The "queries" and optional "exclude" lists of a start or queries message."""
    queries = _texts(message, "queries", limits)
    exclude = _texts(message, "exclude", limits) if "exclude" in message else []
    if not queries and not exclude:
        raise ProtocolError('"queries" must name at least one sound (or give "exclude")')
    if len(queries) > limits.max_queries or len(exclude) > limits.max_queries:
        raise ProtocolError(f"at most {limits.max_queries} queries and {limits.max_queries} exclusions per session")
    return queries, exclude


def parse_block(data: bytes, rate: int, channels: int, limits: Limits) -> np.ndarray:
    """A binary message -> (n, channels) float32 frames, n from 1 to max_block_s of audio."""
    if not data or len(data) % (4 * channels):
        raise ProtocolError(f"binary message of {len(data)} bytes: expected whole frames of {channels} float32 samples "
                            f"({4 * channels} bytes each)")
    frames = len(data) // (4 * channels)
    most = int(limits.max_block_s * rate)
    if frames > most:
        raise ProtocolError(f"block of {frames} frames: at most {most} ({limits.max_block_s:g} s at {rate} Hz)")
    block = np.frombuffer(data, dtype="<f4").astype(np.float32).reshape(frames, channels)
    if not np.isfinite(block).all():
        raise ProtocolError("block holds NaN or infinite samples: it was dropped")
    return block


def encode(message: dict) -> str:
    return json.dumps(message, separators=(",", ":"))


def _integer(message: dict, key: str, low: int, high: int, default: int | None = None) -> int:
    value = message.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ProtocolError(f'"{key}" must be an integer from {low} to {high}, got {value!r}')
    if not low <= value <= high:
        raise ProtocolError(f'"{key}" {value}: must be from {low} to {high}')
    return value


def _texts(message: dict, key: str, limits: Limits) -> list[str]:
    texts = message.get(key)
    if not isinstance(texts, list) or not all(isinstance(text, str) for text in texts):
        raise ProtocolError(f'"{key}" must be a list of strings')
    texts = [text.strip() for text in texts]
    for text in texts:
        if not text:
            raise ProtocolError(f'"{key}": an empty query')
        if len(text) > limits.max_query_chars:
            raise ProtocolError(f'"{key}": a query of {len(text)} characters, at most {limits.max_query_chars}')
    return texts
