"""`clipsep-rt --input FILE --stream`: the streaming path from the command line."""

from __future__ import annotations

import json

import numpy as np
import soundfile as sf
from conftest import REFERENCE_CHECKPOINT, write_wav

from clipsep_rt.cli import main
from clipsep_rt.model import load_checkpoint
from clipsep_rt.runtime.engines.torch_engine import TorchEngine
from clipsep_rt.runtime.streaming import (
    StreamingOptions,
    StreamingSeparator,
    stream_file_aligned,
)


def test_file_streamed_to_a_file_is_aligned_and_complete(tmp_path, golden):
    mixture = np.resize(golden["mixture_wav"], 50_001).astype(np.float32)
    write_wav(tmp_path / "mix.wav", mixture)
    embeddings = np.stack([golden["query_embedding"][0], -golden["query_embedding"][0]])
    np.save(tmp_path / "two.npy", embeddings)
    args = ["--input", str(tmp_path / "mix.wav"), "--stream", "--query-embedding", str(tmp_path / "two.npy"),
            "-c", str(REFERENCE_CHECKPOINT), "--precision", "fp32", "--hop-frames", "4", "--lookahead-frames", "2",
            "-o", str(tmp_path / "out.wav"), "--stats", str(tmp_path / "stats.json"), "--quiet"]
    assert main(args) == 0
    out, rate = sf.read(tmp_path / "out.wav", dtype="float32", always_2d=True)
    assert rate == 16000 and out.shape == (len(mixture), 2)  # one channel per query, same length
    engine = TorchEngine(load_checkpoint(REFERENCE_CHECKPOINT).build(), "cpu", "fp32")
    separator = StreamingSeparator(engine, engine.prepare_queries(embeddings, False), options=StreamingOptions(4, 2))
    np.testing.assert_allclose(out.T, stream_file_aligned(separator, [mixture]), atol=1e-6)
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["latency_ms"] == separator.latency_ms and stats["hop_frames"] == 4
    assert len(stats["steps"]) == len(separator.stats.steps) and stats["compute_p99_ms"] > 0
    assert main(args) == 2  # the output exists: kept unless --overwrite


def test_streaming_usage_errors(tmp_path, golden, capsys):
    write_wav(tmp_path / "mix.wav", golden["mixture_wav"])
    np.save(tmp_path / "q.npy", golden["query_embedding"])
    base = ["--stream", "--query-embedding", str(tmp_path / "q.npy"), "-c", str(REFERENCE_CHECKPOINT), "--quiet"]
    cases = [
        ([str(tmp_path / "mix.wav"), str(tmp_path / "mix.wav"), "-o", str(tmp_path / "o.wav")], "one input file"),
        ([str(tmp_path / "mix.wav")], "give -o FILE.wav"),
        ([str(tmp_path / "mix.wav"), "-o", str(tmp_path / "o.flac")], "one .wav file"),
        ([str(tmp_path / "mix.wav"), "-o", str(tmp_path / "mix.wav")], "would overwrite its input"),
        ([str(tmp_path / "mix.wav"), "-o", str(tmp_path / "o.wav"), "--hop-frames", "0"], "hop-frames"),
    ]
    for extra, message in cases:
        assert main([*base, *extra]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err
