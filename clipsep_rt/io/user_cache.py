"""The user's cache folder for what clipsep-rt computes once per machine and keeps.

    $CLIPSEP_RT_CACHE_DIR                 when set (tests, shared machines, read-only homes)
    $XDG_CACHE_HOME/clipsep-rt            else
    ~/.cache/clipsep-rt                   else

Subfolders: engines/ (checkpoints compiled once to engine folders), hop_probe/ (measured hop
times that rank streaming backends), openvino/ (OpenVINO's compiled models, its own CACHE_DIR:
a graph compiles in a third of the time from there), ort-tensorrt/ (ONNX Runtime's TensorRT
engines), embeddings/ (query vectors, query.cache). Every entry can be deleted at any time: it
is rebuilt when next needed.
"""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "CLIPSEP_RT_CACHE_DIR"


def user_cache_dir(*parts: str) -> Path:
    """The cache folder (or a subfolder of it, `parts` joined); not created here."""
    override = os.environ.get(CACHE_ENV)
    base = Path(override) if override else Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "clipsep-rt"
    return base.joinpath(*parts)


def compile_openvino(core, graph, config: dict):
    """`core.compile_model(graph, "CPU", config)` through OpenVINO's model cache in the user cache
    (openvino/: OpenVINO keys what it keeps by graph, device and options, and recompiles when any
    of those changes); without the cache where it cannot be used (a read-only home): the same
    compile, only slower. `graph`: an ov.Model or a model file's path."""
    try:
        return core.compile_model(graph, "CPU", {**config, "CACHE_DIR": str(user_cache_dir("openvino"))})
    except Exception:  # noqa: BLE001 - OpenVINO's own RuntimeError types: once more without the cache
        return core.compile_model(graph, "CPU", config)
