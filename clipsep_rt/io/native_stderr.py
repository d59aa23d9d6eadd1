"""Keeping what C libraries print on stderr off the terminal while a file is probed.

libsndfile's MP3 decoder (mpg123) prints "Note: Illegal Audio-MPEG-Header ..." lines on file
descriptor 2 while it probes a file it cannot read (random bytes, whatever the file's name),
before the one-line error that says so; Python's `sys.stderr` never sees them.

Only the opening of a file is silenced: whatever another thread prints meanwhile is lost, so
it is kept short (an MP3 damaged further on gets mpg123's notes of its resync while it is
read, which then say something true about the file).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_LOCK = threading.Lock()  # one redirection of file descriptor 2 at a time
_STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}  # their handlers raise: they wait until stderr is back


@contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """Meanwhile, file descriptor 2 goes to /dev/null (Python's own stderr is flushed first).
    Keep it short: another thread's stderr output in the meantime is lost.

    SIGINT and SIGTERM are blocked in this thread meanwhile, so that their handler (which
    raises) runs once file descriptor 2 is back, never between the switch and the restore."""
    with _LOCK:
        sys.stderr.flush()
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
        try:
            saved = os.dup(2)
        except OSError:  # no stderr at all: nothing to silence
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
            yield
            return
        try:
            with open(os.devnull, "wb") as null:
                os.dup2(null.fileno(), 2)
            yield
        finally:
            try:
                os.dup2(saved, 2)
                os.close(saved)
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
