"""Exclusion (`--exclude`, `exclude=`): each output is its query's mask times (1 - the union of
the exclusions' masks), all queries in one network pass; exclusions alone give "all but" them.
The bundled model on ONNX Runtime, on the shipped dog + guitar example."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf

from clipsep_rt.api import Exclusions, Separator
from clipsep_rt.cli import main
from clipsep_rt.errors import ClipsepError
from clipsep_rt.runtime.exclusion import combine
from clipsep_rt.runtime.live.stdin import parse_typed_queries
from clipsep_rt.runtime.offline import OfflineSeparator
from clipsep_rt.runtime.streaming import stream_file_aligned

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "dog_guitar"
MODEL = ["-b", "onnxruntime", "-d", "cpu", "--quiet"]
HOP, STREAMED = 16, 40000  # streams: a network call every 16 frames, over 2.5 s


@pytest.fixture(scope="module")
def separator():
    return Separator.open(backend="onnxruntime", device="cpu")


@pytest.fixture(scope="module")
def mixture():
    samples, rate = sf.read(EXAMPLE / "mixture.wav", dtype="float32")
    assert rate == 16000
    return samples[: 5 * rate]  # two network windows with their crossfade


@pytest.fixture(scope="module")
def vectors(separator):
    """{'dog': (D,), 'guitar': (D,)} text embeddings of the bundled model's encoder."""
    dog, guitar = separator.embed_text(["dog barking", "acoustic guitar"])
    return {"dog": dog, "guitar": guitar}


def _energy(x: np.ndarray) -> float:
    return float(np.sum(np.square(x, dtype=np.float64)))


# -- the combination ------------------------------------------------------------------------

def test_combination_is_each_mask_times_the_complement_of_the_exclusions_union():
    rng = np.random.default_rng(0)
    p = rng.random((2, 5, 3, 4)).astype(np.float32)  # (B, Q + E, F, T): 2 queries, 3 exclusions
    got = combine(p, positives=2)
    union = np.maximum(np.maximum(p[:, 2], p[:, 3]), p[:, 4])
    np.testing.assert_allclose(got, np.stack([p[:, 0] * (1 - union), p[:, 1] * (1 - union)], axis=1), rtol=1e-6)
    assert got.dtype == np.float32 and got.shape == (2, 2, 3, 4)
    np.testing.assert_allclose(combine(p, positives=0), (1 - p.max(axis=1))[:, None], rtol=1e-6)  # "all but"
    np.testing.assert_array_equal(combine(p[:, :2], positives=1), p[:, :1] * (1 - p[:, 1:2]))


def test_engine_runs_queries_and_exclusions_in_one_call(separator, vectors, monkeypatch):
    engine = separator.pipeline.engine
    log_mag = np.random.default_rng(1).normal(-4, 2, (2, 1, 256, 256)).astype(np.float32)
    alone = {name: engine.probabilities(log_mag, engine.prepare_queries(vector[None], False))[:, 0]
             for name, vector in vectors.items()}  # each query in its own call: (B, F, T)
    calls = []
    inner = engine.inner.probabilities
    monkeypatch.setattr(engine.inner, "probabilities", lambda x, q: calls.append(q.rows) or inner(x, q))
    prepared = engine.prepare_excluding(vectors["guitar"][None], vectors["dog"][None])
    got = engine.probabilities(log_mag, prepared)
    assert calls == [2] and prepared.rows == 1 and got.shape == (2, 1, 256, 256)
    np.testing.assert_allclose(got[:, 0], alone["guitar"] * (1 - alone["dog"]), atol=1e-5)


# -- the API --------------------------------------------------------------------------------

def test_separate_with_exclusion_is_the_combination_of_the_individual_masks(separator, mixture, vectors):
    """The same windows through an engine that runs each query on its own and combines the masks
    as the formula says: the output of one pass with the exclusion is the same audio."""

    class OneQueryAtATime:
        device, precision = "cpu", "fp32"
        inner = separator.pipeline.engine.inner

        def probabilities(self, log_mag, rows):
            guitar, dog = (self.inner.probabilities(log_mag, self.inner.prepare_queries(v[None], False))
                           for v in (vectors["guitar"], vectors["dog"]))
            return guitar * (1 - dog)

    got = separator.separate(mixture, 16000, embeddings={"guitar": vectors["guitar"]},
                             exclude=Exclusions(vectors={"dog": vectors["dog"]})).sources["guitar"]
    expected = OfflineSeparator(OneQueryAtATime(), separator.spectral).separate(mixture, SimpleNamespace(rows=1))[0]
    np.testing.assert_allclose(got, expected, atol=1e-5)
    plain = separator.separate(mixture, 16000, embeddings={"guitar": vectors["guitar"]}).sources["guitar"]
    assert _energy(got) < _energy(plain)


def test_everything_but_is_the_mixture_less_the_excluded_sound(separator, mixture):
    result = separator.separate(mixture, 16000, exclude="dog barking")
    assert list(result.sources) == ["all but dog barking"]
    dog = separator.separate(mixture, 16000, ["dog barking"]).sources["dog barking"]
    np.testing.assert_allclose(result.sources["all but dog barking"], mixture - dog, atol=1e-5)


def test_queries_record_outputs_and_exclusions(separator):
    queries = separator.queries(["acoustic guitar", "piano"], exclude=["dog barking", "speech"])
    assert queries.names == queries.query_names == ["acoustic guitar", "piano"] and queries.rows == 2
    assert queries.excluded == ["dog barking", "speech"] and queries.exclusions.shape == (2, separator.query_dim)
    assert queries.labels == ["acoustic guitar without dog barking, speech", "piano without dog barking, speech"]
    alone = separator.queries(exclude="dog barking")
    assert (alone.names, alone.query_names, alone.labels, alone.rows) == (["all but dog barking"], [],
                                                                          ["all but dog barking"], 1)
    with pytest.raises(ClipsepError, match="exclusions when the Queries are made"):
        separator.separate(np.zeros(1600, np.float32), 16000, queries, exclude=["speech"])
    with pytest.raises(ClipsepError, match="no query given"):
        separator.separate(np.zeros(1600, np.float32), 16000)


def test_stream_with_exclusion_gives_one_row_per_output(separator, mixture):
    stream = separator.stream(["acoustic guitar"], hop_frames=HOP, exclude=["dog barking"])
    assert stream.query_names == ["acoustic guitar without dog barking"] and stream.queries.rows == 1  # named as live switches name it
    blocks = [mixture[i : min(i + 256, STREAMED)] for i in range(0, STREAMED, 256)]
    guitar = stream_file_aligned(stream, blocks)
    plain = stream_file_aligned(separator.stream(["acoustic guitar"], hop_frames=HOP), blocks)
    assert guitar.shape == plain.shape == (1, STREAMED)
    assert 0 < _energy(guitar) < _energy(plain)
    everything_but = stream_file_aligned(separator.stream(exclude="dog barking", hop_frames=HOP), blocks)
    dog = stream_file_aligned(separator.stream(["dog barking"], hop_frames=HOP), blocks)
    np.testing.assert_allclose(everything_but[0], mixture[:STREAMED] - dog[0], atol=1e-4)


# -- the command line -----------------------------------------------------------------------

@pytest.fixture
def files(tmp_path, mixture, vectors):
    sf.write(tmp_path / "mix.wav", mixture, 16000, subtype="FLOAT")
    for name, vector in vectors.items():
        np.save(tmp_path / f"{name}.npy", vector)
    return tmp_path


def test_cli_batch_names_outputs_after_their_exclusions(files, separator, mixture, vectors):
    out = files / "out"
    code = main([str(files / "mix.wav"), "--query-embedding", str(files / "guitar.npy"), "--exclude-embedding",
                 str(files / "dog.npy"), "--residual", "-o", str(out), *MODEL])
    assert code == 0
    assert sorted(p.name for p in out.glob("*.wav")) == ["mix_guitar_without_dog.wav", "mix_guitar_without_dog_residual.wav"]
    expected = separator.separate(mixture, 16000, embeddings={"guitar": vectors["guitar"]},
                                  exclude=Exclusions(vectors={"dog": vectors["dog"]})).sources["guitar"]
    written, rate = sf.read(out / "mix_guitar_without_dog.wav", dtype="float32")
    np.testing.assert_allclose(written, expected, atol=1e-5)
    assert main([str(files / "mix.wav"), "--exclude-embedding", str(files / "dog.npy"), "-o", str(out), *MODEL]) == 0
    assert (out / "mix_all_but_dog.wav").is_file()


def test_cli_exclude_text_alone_writes_everything_but_it(files):
    assert main([str(files / "mix.wav"), "--exclude", "dog barking", "-o", str(files / "one.wav"), *MODEL]) == 0
    assert sf.info(files / "one.wav").frames == sf.info(files / "mix.wav").frames


@pytest.mark.parametrize("option, message", [
    (["--noise-heads"], "--noise-heads does not go with --exclude-embedding"),
])
def test_cli_refuses_what_exclusions_do_not_go_with(files, capsys, option, message):
    code = main([str(files / "mix.wav"), "--query-embedding", str(files / "guitar.npy"), "--exclude-embedding",
                 str(files / "dog.npy"), "-o", str(files / "out"), *option, *MODEL])
    assert code == 2 and message in capsys.readouterr().err


def test_cli_stream_with_exclusion(files, separator, mixture, vectors):
    out, short = files / "streamed.wav", files / "short.wav"
    sf.write(short, mixture[:STREAMED], 16000, subtype="FLOAT")
    code = main([str(short), "--stream", "--hop-frames", str(HOP), "--exclude-embedding", str(files / "dog.npy"),
                 "-o", str(out), *MODEL])
    assert code == 0
    written, _ = sf.read(out, dtype="float32")
    stream = separator.stream(hop_frames=HOP, exclude=Exclusions(vectors={"dog": vectors["dog"]}))
    expected = stream_file_aligned(stream, [mixture[i : min(i + 4096, STREAMED)] for i in range(0, STREAMED, 4096)])[0]
    np.testing.assert_allclose(written, expected, atol=1e-5)


# -- live: queries typed on stdin -----------------------------------------------------------

@pytest.mark.parametrize("line, parsed", [
    ("violin", (["violin"], [])),
    ("violin; -speech", (["violin"], ["speech"])),
    (" -speech ;; - dog barking ; piano ", (["piano"], ["speech", "dog barking"])),
    ("-speech", ([], ["speech"])),
])
def test_typed_line_parses_queries_and_exclusions(line, parsed):
    assert parse_typed_queries(line) == parsed


@pytest.mark.parametrize("line, message", [("violin; -", "type it after the '-'"), (" ; ", "no query")])
def test_typed_line_errors_are_one_line(line, message):
    with pytest.raises(ClipsepError, match=message):
        parse_typed_queries(line)
