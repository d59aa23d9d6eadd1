"""Keeping what C libraries print on stderr off the terminal while a file is probed.

libsndfile's MP3 decoder (mpg123) prints "Note: Illegal Audio-MPEG-Header ..." lines on file
descriptor 2 while it probes a file it cannot read (random bytes, whatever the file's name),
before the one-line error that says so; Python's `sys.stderr` never sees them.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_LOCK = threading.Lock()  # one redirection of file descriptor 2 at a time


@contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """Meanwhile, file descriptor 2 goes to /dev/null (Python's own stderr is flushed first).
    Keep it short: another thread's stderr output in the meantime is lost."""
    with _LOCK:
        sys.stderr.flush()
        try:
            saved = os.dup(2)
        except OSError:  # no stderr at all: nothing to silence
            yield
            return
        try:
            with open(os.devnull, "wb") as null:
                os.dup2(null.fileno(), 2)
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
