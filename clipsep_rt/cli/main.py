"""The `clipsep-rt` command: the subcommands, the default command, errors and exit codes.

    clipsep-rt --query "violin" [--query ...] --input PATH [PATH|DIR|GLOB ...] -o OUTDIR
    clipsep-rt convert ORIGINAL.pt -o model.safetensors

Bad input is reported as one line on stderr (`clipsep-rt: error: ...`) with a non-zero
exit status: 1 when some inputs failed, 2 for a bad command line or setting, 130 after
Ctrl-C and 143 after SIGTERM. SIGTERM is raised as `Terminated` (a KeyboardInterrupt), so
it unwinds like Ctrl-C: temporary files are removed and the batch reports what finished.

Each subcommand's module holds its parser (`add_parser`) and its handler; the handlers
import torch and the runtime only when they run, so `--help` stays quick.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from clipsep_rt import __version__
from clipsep_rt.cli import bench, convert, embed, embed_frames, export, separate, serve, train
from clipsep_rt.cli import eval as evaluate
from clipsep_rt.cli.common import EXIT_INTERRUPTED, EXIT_TERMINATED, EXIT_USAGE, Terminated, say, say_error
from clipsep_rt.cli.flags import error_message
from clipsep_rt.errors import ClipsepError

DEFAULT_COMMAND = "separate"
COMMANDS = (separate, convert, embed, embed_frames, export, bench, evaluate, train, serve)  # in the order of --help


def build_parser() -> tuple[argparse.ArgumentParser, tuple[str, ...]]:
    """The parser and the names of its subcommands."""
    parser, sub = _parser_and_commands()
    return parser, tuple(sub.choices)


def _parser_and_commands():
    parser = argparse.ArgumentParser(
        prog="clipsep-rt",
        description="Text-queried sound separation (CLIPSep / CLIPSep-NIT). "
                    f"Without a subcommand, `{DEFAULT_COMMAND}` is assumed.",
    )
    parser.add_argument("--version", action="version", version=f"clipsep-rt {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(sub)
    return parser, sub


def given_options(argv: list[str], parsed: argparse.Namespace) -> dict[str, str]:
    """The options `argv` sets itself rather than by default: argparse dest -> its flag."""
    parser, sub = _parser_and_commands()
    command = sub.choices[parsed.command]
    for action in command._actions:  # a parse without defaults holds only what argv sets
        action.default = argparse.SUPPRESS
    shadow = parser.parse_args(argv)
    return {
        action.dest: max(action.option_strings, key=len, default=action.metavar or action.dest)
        for action in command._actions if hasattr(shadow, action.dest)
    }


STOP_SIGNALS = {signal.SIGINT: KeyboardInterrupt, signal.SIGTERM: Terminated}  # signal -> what it raises


@contextmanager
def _stop_signals_unwind(received: list[signal.Signals]) -> Iterator[None]:
    """While the command runs, SIGINT raises KeyboardInterrupt and SIGTERM `Terminated`, once:
    a repeat while the command unwinds (an impatient Ctrl-C, or `timeout` signalling the
    process and then its group) is ignored, so the clean-up finishes; kill -9 still ends it.
    The signal is appended to `received` (Ray re-raises `Terminated` as a plain
    KeyboardInterrupt). A signal the process ignores stays ignored; off the main thread
    nothing is installed (live runs install their own handlers inside, see runtime.live.stop_signals)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    stopping = False

    def stop(number: int, frame) -> None:
        nonlocal stopping
        if not stopping:
            stopping = True
            received.append(signal.Signals(number))
            raise STOP_SIGNALS[signal.Signals(number)]()

    previous = {
        number: signal.signal(number, stop) for number in STOP_SIGNALS if signal.getsignal(number) != signal.SIG_IGN
    }
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, signal.SIG_DFL if handler is None else handler)


def _with_default_command(argv: list[str], commands: tuple[str, ...]) -> list[str]:
    if argv and (argv[0] in commands or argv[0] in ("-h", "--help", "--version")):
        return argv
    return [DEFAULT_COMMAND, *argv]


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser, commands = build_parser()
    argv = _with_default_command(argv, commands)
    args = parser.parse_args(argv)
    args.given = given_options(argv, args)
    received: list[signal.Signals] = []  # the stop signal that arrived, if one did
    try:
        with _stop_signals_unwind(received):
            return args.handler(args)
    except ClipsepError as error:
        say_error(error_message(error))
        return EXIT_USAGE
    except KeyboardInterrupt as stop:
        if isinstance(stop, Terminated) or signal.SIGTERM in received:
            say("terminated")
            return EXIT_TERMINATED
        say("interrupted")
        return EXIT_INTERRUPTED
