"""Presence scores and the presence gate (`dsp.presence`): the math on synthetic masks, the
gate's fades, batch and streaming through them, the CLI's --gate and --stats, the report."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
from conftest import REFERENCE_CHECKPOINT, write_wav

from clipsep_rt.api import GateOptions, Separator
from clipsep_rt.cli import main
from clipsep_rt.config import SpectralConfig
from clipsep_rt.dsp.presence import PresenceGate, PresenceTimeline, frame_energies, frame_scores
from clipsep_rt.errors import OptionError
from clipsep_rt.runtime.streaming import stream_file_aligned

SPECTRAL = SpectralConfig()
FRAMES_PER_S = SPECTRAL.sample_rate / SPECTRAL.hop_length  # 62.5


def test_scores_are_the_energy_fraction_the_mask_passes():
    rng = np.random.default_rng(0)
    mixture = rng.normal(size=(513, 10)) + 1j * rng.normal(size=(513, 10))
    masks = np.stack([np.ones((513, 10)), np.zeros((513, 10)), np.full((513, 10), 0.5),
                      np.r_[np.ones((256, 10)), np.zeros((257, 10))]])
    passed, total = frame_energies(masks, mixture)
    scores = frame_scores(passed, total)
    np.testing.assert_allclose(scores[:3], [[1.0] * 10, [0.0] * 10, [0.25] * 10])
    power = np.abs(mixture) ** 2
    np.testing.assert_allclose(scores[3], power[:256].sum(0) / power.sum(0))
    assert frame_scores(passed, np.zeros(10)).max() == 0.0  # silent frames: absent


def test_timeline_is_energy_weighted_per_second_and_independent_of_chunking():
    frames = 200  # 3.2 s: seconds 0-2 full, the fourth partial
    rng = np.random.default_rng(1)
    total = rng.uniform(0.5, 2.0, frames)
    passed = np.stack([total * 0.8, total * np.where(np.arange(frames) < 63, 0.9, 0.1)])
    whole = PresenceTimeline(SPECTRAL)
    whole.add(0, passed, total, ["a", "b"])
    pieces = PresenceTimeline(SPECTRAL)
    for start in range(0, frames, 7):
        pieces.add(start, passed[:, start : start + 7], total[start : start + 7], ["a", "b"])
    for name in ("a", "b"):
        assert whole.scores()[name] == pytest.approx(pieces.scores()[name])
    scores = whole.scores()
    assert len(scores["a"]) == 4 and scores["a"] == pytest.approx([0.8] * 4)
    assert scores["b"][0] == pytest.approx(0.9) and scores["b"][2] == pytest.approx(0.1)
    later = PresenceTimeline(SPECTRAL)  # a query named mid-stream has no score before it
    later.add(0, passed[:1, :100], total[:100], ["a"])
    later.add(100, passed[1:, 100:], total[100:], ["b"])
    assert later.scores()["b"][0] is None and later.scores()["a"][-1] is None
    assert later.to_json(0.5)["queries"]["b"]["present"] == [None, False, False, False]
    switched = PresenceTimeline(SPECTRAL)  # queries switched inside one second: each scored on its frames
    switched.add(0, np.full((1, 10), 0.5), np.ones(10), ["violin"])
    switched.add(10, np.full((1, 200), 0.25), np.ones(200), ["speech"])
    assert switched.scores()["violin"][0] == pytest.approx(0.5) and switched.scores()["violin"][1] is None
    assert switched.scores()["speech"][0] == pytest.approx(0.25)


def test_gate_fades_without_steps_and_holds_over():
    options = GateOptions(threshold=0.3, window_ms=64, hangover_ms=160, ramp_ms=96)
    gate = PresenceGate(options, rows=1)
    total = np.ones(300)
    on = (np.arange(300) >= 50) & (np.arange(300) < 150)
    gains = gate.gains((total * np.where(on, 0.9, 0.0))[None], total)[0]
    ramp_frames = round(96 / 16)
    assert np.abs(np.diff(gains)).max() == pytest.approx(1 / ramp_frames)  # no step: a linear fade
    assert gains[:50].max() == 0.0 and gains[60:150].min() == 1.0  # starts closed, opens after a fade
    opened = np.argmax(gains > 0)
    assert np.argmax(gains == 1.0) - opened == ramp_frames - 1
    closing = 150 + np.argmax(gains[150:] < 1.0)  # the window's score drops, then the hangover holds
    assert closing - 150 >= round(160 / 16)
    assert gains[closing:].tolist() == sorted(gains[closing:], reverse=True) and gains[-1] == 0.0
    with pytest.raises(OptionError, match="gate_threshold"):
        GateOptions(threshold=1.5)


def test_a_switched_row_starts_over_without_a_step():
    """A stream's switch puts a new query on a row: the old query's evidence and hangover no
    longer keep it open, and its gain fades from where it was."""
    options = GateOptions(threshold=0.3, window_ms=64, hangover_ms=480, ramp_ms=96)
    kept, restarted = PresenceGate(options, rows=1), PresenceGate(options, rows=1)
    total = np.ones(100)
    for gate in (kept, restarted):
        assert gate.gains(total[None] * 0.9, total)[0, -1] == 1.0  # the old query: present, open
    restarted.reset([0])
    silent = np.zeros((1, 40))
    held, faded = kept.gains(silent, total[:40])[0], restarted.gains(silent, total[:40])[0]
    assert held[:30].min() == 1.0  # the hangover (480 ms = 30 frames) still holds the old evidence
    assert faded[0] == pytest.approx(1 - 1 / round(96 / 16)) and faded[-1] == 0.0  # fades at once
    assert np.abs(np.diff(np.concatenate([[1.0], faded]))).max() <= 1 / round(96 / 16) + 1e-6


def test_gate_is_the_same_in_any_chunking():
    rng = np.random.default_rng(2)
    total = rng.uniform(0.1, 1, 400)
    passed = total * rng.uniform(0, 1, (2, 400))
    whole = PresenceGate(GateOptions(threshold=0.5), 2).gains(passed, total)
    gate = PresenceGate(GateOptions(threshold=0.5), 2)
    chunked = np.concatenate([gate.gains(passed[:, i : i + 12], total[i : i + 12]) for i in range(0, 400, 12)], axis=1)
    np.testing.assert_array_equal(whole, chunked)


@pytest.fixture(scope="module")
def separator():
    return Separator.open(REFERENCE_CHECKPOINT, backend="torch", precision="fp32")


def _signal(golden) -> np.ndarray:
    """3 s of the golden mixture, 3 s of silence, 3 s of it again (9 s)."""
    part = np.resize(golden["mixture_wav"], 48_000).astype(np.float32)
    return np.concatenate([part, np.zeros(48_000, np.float32), part])


def test_gate_silences_absent_seconds_offline_and_streaming(separator, golden):
    audio = _signal(golden)
    vectors = {"q": golden["query_embedding"][0]}
    plain = separator.separate(audio, 16000, embeddings=vectors)
    gate = GateOptions(threshold=0.05)
    gated = separator.separate(audio, 16000, embeddings=vectors, gate=gate)
    scores = plain.presence["q"]
    assert scores.shape == (9,) and scores[4] == 0.0 and scores[[0, 1, 7, 8]].min() > 0.05
    np.testing.assert_array_equal(gated.presence["q"], scores)  # the score is the ungated mask's
    assert np.abs(gated.sources["q"][59_200:94_400]).max() == 0.0  # the gap, less the window, hangover and fade
    middle = slice(16_000, 40_000)  # present: passed as it was
    np.testing.assert_allclose(gated.sources["q"][middle], plain.sources["q"][middle], atol=1e-6)
    stream = separator.stream(separator.prepare_queries(["q"], golden["query_embedding"][:1]), hop_frames=4,
                              lookahead_frames=2, gate=gate)
    streamed = stream_file_aligned(stream, [audio[i : i + 256] for i in range(0, len(audio), 256)])[0]
    stream_scores = np.array(stream.presence.scores()["q"][:9])
    agree = [0, 1, 4, 7, 8]  # seconds wholly in the audio or the silence (the others see different frame reach)
    assert ((stream_scores >= 0.05) == (scores >= 0.05))[agree].all()
    assert np.abs(streamed[60_000:94_000]).max() == 0.0
    assert np.abs(np.diff(streamed)).max() < 4 * np.abs(np.diff(audio)).max() + 1e-3  # fades, no clicks


def test_cli_gate_and_stats_batch_and_stream(tmp_path, golden):
    write_wav(tmp_path / "mix.wav", _signal(golden))
    np.save(tmp_path / "q.npy", golden["query_embedding"][0])
    base = ["--input", str(tmp_path / "mix.wav"), "--query-embedding", str(tmp_path / "q.npy"),
            "-c", str(REFERENCE_CHECKPOINT), "--precision", "fp32", "--quiet"]
    assert main([*base, "-o", str(tmp_path / "out"), "--gate", "--stats", str(tmp_path / "batch.json")]) == 0
    stats = json.loads((tmp_path / "batch.json").read_text())
    (entry,) = stats["inputs"]
    assert entry["gate"] is True and entry["input"] == str((tmp_path / "mix.wav").resolve())
    timeline = entry["presence"]["queries"]["q"]
    assert len(timeline["scores"]) == 9 and timeline["present"][4] is False and timeline["scores"][4] == 0.0
    manifest = [json.loads(line) for line in (tmp_path / "out" / "clipsep-rt-manifest.jsonl").read_text().splitlines()]
    assert manifest[0]["presence"]["q"] == timeline["scores"]
    assert main([*base, "--stream", "--gate", "--hop-frames", "4", "--lookahead-frames", "2",
                 "-o", str(tmp_path / "s.wav"), "--stats", str(tmp_path / "stream.json")]) == 0
    presence = json.loads((tmp_path / "stream.json").read_text())["presence"]
    assert presence["gate"] is True and presence["queries"]["q"]["present"][4] is False
    assert len(presence["queries"]["q"]["scores"]) >= 9


def test_report_shows_the_timeline(tmp_path, golden):
    pytest.importorskip("matplotlib")
    write_wav(tmp_path / "mix.wav", _signal(golden))
    np.save(tmp_path / "q.npy", golden["query_embedding"][0])
    assert main(["--input", str(tmp_path / "mix.wav"), "--query-embedding", str(tmp_path / "q.npy"),
                 "-c", str(REFERENCE_CHECKPOINT), "--precision", "fp32", "--quiet", "-o", str(tmp_path / "out"),
                 "--report", str(tmp_path / "report")]) == 0
    page = (tmp_path / "report" / "index.html").read_text()
    assert 'class="timeline"' in page and "Presence timeline" in page
    assert page.count('<span class="absent"') >= 1 and "4-5 s: presence 0.00" in page
    # With --gate, the report plays what the batch wrote: the gated output.
    assert main(["--input", str(tmp_path / "mix.wav"), "--query-embedding", str(tmp_path / "q.npy"),
                 "-c", str(REFERENCE_CHECKPOINT), "--precision", "fp32", "--quiet", "-o", str(tmp_path / "gated"),
                 "--gate", "--report", str(tmp_path / "gated_report")]) == 0
    written = sf.read(tmp_path / "gated" / "mix_q.wav", dtype="float32")[0]
    shown = sf.read(tmp_path / "gated_report" / "01-mix" / "q1-q.wav", dtype="float32")[0]
    ungated = sf.read(tmp_path / "out" / "mix_q.wav", dtype="float32")[0]
    assert np.abs(shown - written).max() < 1e-4 and np.abs(written - ungated).max() > 1e-2
