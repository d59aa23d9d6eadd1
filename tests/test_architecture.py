"""Following the query list from the batch command and from the stream command into the
network moves down the layers (pyproject's import-linter contract) without climbing back:
every call from one clipsep_rt module into another is traced, and none may go from a lower
layer into a higher one, except the progress callback named below."""

from __future__ import annotations

import sys
import threading
import tomllib
from pathlib import Path

import numpy as np
import pytest
from conftest import write_wav

from clipsep_rt.cli import main
from clipsep_rt.config import ModelConfig
from clipsep_rt.model.checkpoint import checkpoint_from_model, save_checkpoint
from clipsep_rt.model.separator import CLIPSepSeparator

# (caller module, callee module, callee function): callbacks that report upward by design.
ALLOWED_CLIMBS = {("clipsep_rt.runtime.offline", "clipsep_rt.jobs.batch", "on_progress")}


def _layers() -> list[set[str]]:
    config = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())
    contract = next(c for c in config["tool"]["importlinter"]["contracts"] if c["type"] == "layers")
    return [{part.strip() for part in layer.split("|")} for layer in contract["layers"]]


def _layer_of(module: str | None, layers: list[set[str]]) -> int | None:
    """Index in `layers` (0: the top) of a clipsep_rt module, None outside the package or its layers."""
    if not module or not module.startswith("clipsep_rt."):
        return None
    top = module.split(".")[1]
    return next((index for index, names in enumerate(layers) if top in names), None)


def _climbs(argv: list[str]) -> tuple[int, set[tuple[str, str, str]]]:
    """Run the command in this process and collect (caller, callee, function) of upward calls."""
    layers = _layers()
    climbs: set[tuple[str, str, str]] = set()

    def profile(frame, event, arg):
        if event != "call" or frame.f_back is None:
            return
        callee, caller = frame.f_globals.get("__name__"), frame.f_back.f_globals.get("__name__")
        lower, upper = _layer_of(caller, layers), _layer_of(callee, layers)
        if lower is not None and upper is not None and upper < lower:
            climbs.add((caller, callee, frame.f_code.co_name))

    sys.setprofile(profile)
    threading.setprofile(profile)
    try:
        code = main(argv)
    finally:
        sys.setprofile(None)
        threading.setprofile(None)
    return code, climbs


@pytest.fixture
def tiny(tmp_path):
    save_checkpoint(checkpoint_from_model(CLIPSepSeparator(ModelConfig(ngf=2, query_dim=8)), None), tmp_path / "tiny.safetensors")
    np.save(tmp_path / "query.npy", np.ones(8, np.float32) / np.sqrt(8))
    write_wav(tmp_path / "mix.wav", np.random.default_rng(0).normal(0, 0.1, 16000 * 3).astype(np.float32))
    return tmp_path


def _base(tiny: Path) -> list[str]:
    return [str(tiny / "mix.wav"), "-c", str(tiny / "tiny.safetensors"), "--query-embedding", str(tiny / "query.npy"),
            "--backend", "torch", "--precision", "fp32", "--quiet"]


def test_the_batch_command_moves_down_the_layers(tiny):
    code, climbs = _climbs([*_base(tiny), "-o", str(tiny / "out")])
    assert code == 0 and (tiny / "out" / "mix_query.wav").is_file()
    assert climbs <= ALLOWED_CLIMBS, sorted(climbs - ALLOWED_CLIMBS)


def test_the_stream_command_moves_down_the_layers(tiny):
    code, climbs = _climbs([*_base(tiny), "--stream", "-o", str(tiny / "streamed.wav")])
    assert code == 0 and (tiny / "streamed.wav").is_file()
    assert not climbs, sorted(climbs)
