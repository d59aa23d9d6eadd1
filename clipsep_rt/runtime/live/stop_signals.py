"""Stopping a live run with a signal: Ctrl-C (SIGINT), SIGTERM and SIGHUP (the terminal or
SSH session closed) end it cleanly.

While `StopSignals.caught()` is active on the main thread, these signals do not raise:
they set `event`, which the runner's loop watches, so the run stops at its next check and
its files are finished. A signal repeated while the files are finished changes nothing: an
impatient second Ctrl-C, or `timeout`, which signals the process and then its process group
(two deliveries that Python sees as one or as two, as the scheduler has it). Raising
KeyboardInterrupt there instead would abandon the files half-way.

The handlers restart interrupted system calls (SA_RESTART): libjack talks to its server over
sockets, and a signal that interrupts that while PortAudio closes a stream made it fail an
assertion and abort the process.

A signal the process ignores (SIG_IGN, e.g. SIGINT in a background job, SIGTERM under
nohup-like launchers) stays ignored. Off the main thread Python cannot install handlers:
there the caller's own handling applies (Ctrl-C raises KeyboardInterrupt in the main thread).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

STOP_SIGNALS = {signal.SIGINT: "interrupted", signal.SIGTERM: "terminated", signal.SIGHUP: "hung up"}  # -> stop reason


class StopSignals:
    """SIGINT / SIGTERM / SIGHUP as a stop request: `event` is set, `reason` is the first one's
    ("interrupted", "terminated" or "hung up"), `count` how many arrived."""

    def __init__(self):
        self.event = threading.Event()
        self.reason: str | None = None
        self.count = 0

    @contextmanager
    def caught(self) -> Iterator[StopSignals]:
        """Catch the stop signals while the block runs; the previous handlers come back after."""
        previous = {}
        if threading.current_thread() is threading.main_thread():
            for number in STOP_SIGNALS:
                if signal.getsignal(number) != signal.SIG_IGN:
                    previous[number] = signal.signal(number, self._handle)
                    signal.siginterrupt(number, False)  # restart system calls: see the module docstring
        try:
            yield self
        finally:
            for number, handler in previous.items():
                signal.signal(number, signal.SIG_DFL if handler is None else handler)

    def _handle(self, number: int, frame) -> None:
        """The handler: only records (it may run between any two bytecodes of the main thread)."""
        self.count += 1
        if self.reason is None:
            self.reason = STOP_SIGNALS[signal.Signals(number)]
        self.event.set()
