"""What a line typed during a live run does (`--input mic`, or a file played to the speakers):
switch to new queries (`violin; -speech`), or to a query fitted to the last seconds heard
(`/this`, `/this 5`, `/this 5; -speech`). It runs on the stdin thread
(`runtime.live.stdin.read_queries_from_stdin`), never the audio's: the worker goes on
separating with the old queries until the switch.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable

import numpy as np

from clipsep_rt.api import Separator
from clipsep_rt.errors import ClipsepError
from clipsep_rt.runtime.live.recent_input import RecentInput
from clipsep_rt.runtime.live.runner import LiveRunner
from clipsep_rt.runtime.live.stdin import parse_this_command, parse_typed_queries
from clipsep_rt.runtime.query_fitting import FitOptions


class TypedLines:
    """`read_queries_from_stdin`'s callback: one typed line -> one query switch of `runner`
    (held weakly: the stdin thread outlives the run), and a line to `tell` (None: quiet) that
    says how long the text encoder or the fit took."""

    def __init__(self, separator: Separator, runner: LiveRunner, tell: Callable[[str], None] | None = None):
        self.separator = separator
        self._runner = weakref.ref(runner)
        self.tell = tell

    def __call__(self, text: str) -> None:
        command = parse_this_command(text)
        started = time.perf_counter()
        if command is None:
            names, excluded = parse_typed_queries(text)
            queries = self.separator.queries(names, exclude=excluded)
            how = "embedded in"
        else:
            if (runner := self._runner()) is None:
                return
            try:
                name, vector = fit_recent(self.separator, runner.worker.recent_input, command.seconds)
            except ClipsepError as error:
                raise ClipsepError(f"{text.strip()!r}: {error}") from None
            queries = self.separator.queries(vectors={name: vector}, exclude=list(command.exclusions))
            how = f"fitted to the last {command.seconds:g} s heard in"
        if (runner := self._runner()) is None:
            return
        runner.switch_queries(queries.for_streaming(), queries.labels)
        if self.tell is not None:
            elapsed_ms = 1000 * (time.perf_counter() - started)
            self.tell(f"switching to {'; '.join(queries.labels)} ({how} {elapsed_ms:.0f} ms): the next hop crossfades to it")


def fit_recent(separator: Separator, recent: RecentInput, seconds: float) -> tuple[str, np.ndarray]:
    """The last `seconds` of `recent` -> ("this@<seconds heard>s", (D,) query vector) fitted to
    them: against what was heard before them, as `--query-span` does (with the bundled other
    sounds when less than half a second was). ClipsepError when fewer seconds were heard."""
    taken = recent.example(seconds)
    name = f"this@{taken.heard_s:.1f}s"
    if taken.start_s >= FitOptions.min_example_s:
        return separator.query_from_span(taken.audio, taken.rate, taken.start_s, taken.end_s, name=name)
    return separator.query_from_audio(taken.example, taken.rate, name=name)
