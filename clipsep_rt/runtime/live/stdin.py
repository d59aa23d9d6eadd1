"""Query switches typed during a live run: one line of stdin per switch, on a daemon thread.

A line holds queries separated by ';'; a leading '-' marks a sound to leave out of every
output (`runtime.exclusion`): `violin; -speech` is the violin without the speech, `-speech`
alone everything but the speech (`parse_typed_queries`). `/this` (or `/this SECONDS`) asks for
the sound of the last seconds heard: a query fitted to them (`parse_this_command`), which may be
followed by exclusions: `/this 5; -speech`.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

from clipsep_rt.errors import ClipsepError

log = logging.getLogger(__name__)

EXCLUDE_MARK = "-"  # a typed query starting with it is an exclusion
COMMAND_MARK = "/"  # a typed line starting with it is a command
THIS_COMMAND = "/this"  # fit a query to the last seconds heard
THIS_DEFAULT_S = 3.0
THIS_RANGE_S = (0.5, 8.0)  # seconds: a query is fitted on at most 8 s of example (FitOptions.max_example_s)


def parse_typed_queries(line: str) -> tuple[list[str], list[str]]:
    """A typed line -> (queries, exclusions): 'violin; -speech; -dog' -> (['violin'], ['speech', 'dog']).
    Empty items are skipped; ClipsepError for a line with no query, or a '-' with nothing after it."""
    queries: list[str] = []
    exclusions: list[str] = []
    for item in (part.strip() for part in line.split(";")):
        if not item.startswith(EXCLUDE_MARK):
            queries += [item] if item else []
            continue
        excluded = item[len(EXCLUDE_MARK):].strip()
        if not excluded:
            raise ClipsepError(f"{line.strip()!r}: '{EXCLUDE_MARK}' marks a sound to leave out: type it after the "
                               f"'{EXCLUDE_MARK}' (e.g. {EXCLUDE_MARK}speech)")
        exclusions.append(excluded)
    if not queries and not exclusions:
        raise ClipsepError(f"{line.strip()!r}: no query: type queries separated by ';' (a leading '-' leaves one out)")
    return queries, exclusions


@dataclass(frozen=True)
class ThisCommand:
    """`/this [SECONDS][; -excluded...]`: the last `seconds` heard are the wanted sound."""

    seconds: float = THIS_DEFAULT_S
    exclusions: tuple[str, ...] = ()


def parse_this_command(line: str) -> ThisCommand | None:
    """A typed line -> ThisCommand for '/this', '/this 5' or '/this 5; -speech', None for a line
    that is no command (queries). ClipsepError (one line) for another command, seconds that are
    not a number from 0.5 to 8, or queries after it (only exclusions may follow)."""
    head, _, rest = line.strip().partition(";")
    words = head.split()
    if not words or not words[0].startswith(COMMAND_MARK):
        return None
    shown = line.strip()
    low, high = THIS_RANGE_S
    usage = f"{THIS_COMMAND} [SECONDS] ({low:g} to {high:g}, default {THIS_DEFAULT_S:g})"
    if words[0].lower() != THIS_COMMAND or len(words) > 2:
        raise ClipsepError(f"{shown!r}: unknown command; {usage} fits a query to the last seconds heard")
    try:
        seconds = float(words[1]) if len(words) == 2 else THIS_DEFAULT_S
    except ValueError:
        raise ClipsepError(f"{shown!r}: {words[1]!r} is not a number of seconds; {usage}") from None
    if not low <= seconds <= high:
        raise ClipsepError(f"{shown!r}: {seconds:g} s is outside {low:g} to {high:g} s; {usage}")
    queries, exclusions = parse_typed_queries(rest) if rest.strip() else ([], [])
    if queries:
        raise ClipsepError(f"{shown!r}: {THIS_COMMAND} makes the one query; only exclusions may follow it "
                           f"({THIS_COMMAND}; {EXCLUDE_MARK}speech)")
    return ThisCommand(seconds, tuple(exclusions))


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
