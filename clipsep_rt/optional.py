"""Import optional third-party packages, turning failures into one-line ClipsepErrors."""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from clipsep_rt.errors import ClipsepError


def import_optional(module: str, extra: str) -> ModuleType:
    """Import `module`, which the `clipsep-rt[extra]` install provides.

    A missing package gets the pip command that installs it; a package that is present
    but fails to import (most often a torchvision wheel built for another torch) gets the
    underlying cause, on one line.
    """
    if importlib.util.find_spec(module) is None:
        raise ClipsepError(f"the Python package '{module}' is not installed: pip install 'clipsep-rt[{extra}]'")
    try:
        return importlib.import_module(module)
    except Exception as exc:
        cause = exc
        while cause.__cause__ is not None:
            cause = cause.__cause__
        hint = ""
        if "torchvision" in str(cause):
            import torch

            hint = f"; torchvision does not match torch {torch.__version__}: install the torchvision build made for it"
        raise ClipsepError(
            f"the Python package '{module}' is installed but fails to import ({describe_exception(cause)}){hint}"
        ) from exc


def describe_exception(exc: BaseException) -> str:
    """'Type: first line of the message', for one-line error reports."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
