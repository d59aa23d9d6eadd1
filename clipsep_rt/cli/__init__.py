"""The `clipsep-rt` command: argument parsing and one module per subcommand. The only code in
the package that reads argparse or prints to the terminal."""

from clipsep_rt.cli.main import main

__all__ = ["main"]
