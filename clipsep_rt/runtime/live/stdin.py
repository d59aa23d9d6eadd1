"""Query switches typed during a live run: one line of stdin per switch, on a daemon thread."""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable
from typing import TextIO

from clipsep_rt.errors import ClipsepError

log = logging.getLogger(__name__)


def read_queries_from_stdin(
    callback: Callable[[str], None],
    stream: TextIO | None = None,
    on_error: Callable[[str], None] | None = None,
) -> threading.Thread:
    """A daemon thread calling `callback(line)` for each non-empty line of stdin (or `stream`)
    until end of input. A ClipsepError (or any other error) from the callback goes to
    `on_error` (default: this module's logger) and the thread goes on reading."""
    source = stream if stream is not None else sys.stdin
    report = on_error or log.error

    def read() -> None:
        for line in source:
            text = line.strip()
            if not text:
                continue
            try:
                callback(text)
            except ClipsepError as exc:
                report(str(exc))
            except Exception as exc:  # noqa: BLE001 - keep reading; say what went wrong
                report(f"{type(exc).__name__}: {exc}")

    thread = threading.Thread(target=read, name="clipsep-live-queries", daemon=True)
    thread.start()
    return thread
