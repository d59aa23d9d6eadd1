"""The `clipsep-rt` command: the subcommands, the default command, errors and exit codes.

    clipsep-rt --query "violin" [--query ...] --input PATH [PATH|DIR|GLOB ...] -o OUTDIR
    clipsep-rt convert ORIGINAL.pt -o model.safetensors

Bad input is reported as one line on stderr (`clipsep-rt: error: ...`) with a non-zero
exit status: 1 when some inputs failed, 2 for a bad command line or setting.

Each subcommand's module holds its parser (`add_parser`) and its handler; the handlers
import torch and the runtime only when they run, so `--help` stays quick.
"""

from __future__ import annotations

import argparse
import sys

from clipsep_rt import __version__
from clipsep_rt.cli import bench, convert, embed, embed_frames, export, separate, train
from clipsep_rt.cli import eval as evaluate
from clipsep_rt.cli.common import EXIT_INTERRUPTED, EXIT_USAGE, say, say_error
from clipsep_rt.cli.flags import error_message
from clipsep_rt.errors import ClipsepError

DEFAULT_COMMAND = "separate"
COMMANDS = (separate, convert, embed, embed_frames, export, bench, evaluate, train)  # in the order of --help


def build_parser() -> tuple[argparse.ArgumentParser, tuple[str, ...]]:
    """The parser and the names of its subcommands."""
    parser = argparse.ArgumentParser(
        prog="clipsep-rt",
        description="Text-queried sound separation (CLIPSep / CLIPSep-NIT). "
                    f"Without a subcommand, `{DEFAULT_COMMAND}` is assumed.",
    )
    parser.add_argument("--version", action="version", version=f"clipsep-rt {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(sub)
    return parser, tuple(sub.choices)


def _with_default_command(argv: list[str], commands: tuple[str, ...]) -> list[str]:
    if argv and (argv[0] in commands or argv[0] in ("-h", "--help", "--version")):
        return argv
    return [DEFAULT_COMMAND, *argv]


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser, commands = build_parser()
    args = parser.parse_args(_with_default_command(argv, commands))
    try:
        return args.handler(args)
    except ClipsepError as error:
        say_error(error_message(error))
        return EXIT_USAGE
    except KeyboardInterrupt:
        say("interrupted")
        return EXIT_INTERRUPTED
