"""The evaluation loop on a tiny random separator, fake text embeddings and a synthetic index."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import soundfile as sf

from clipsep_rt.api import Separator
from clipsep_rt.config import ModelConfig
from clipsep_rt.model import CLIPSepSeparator, checkpoint_from_model, save_checkpoint
from clipsep_rt.training.evaluate import (
    CROP_SAMPLES,
    INPUT_SDR_BINS,
    evaluate,
    make_eval_mixtures,
    read_mixture_list,
    report_json,
    report_markdown,
    summary_stats,
    write_mixture_list,
)

LABELS = ["dog barking|a dog barks", "violin|fiddle", "rain"]


@pytest.fixture
def index(tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    for i in range(9):
        label = LABELS[i % 3]
        split = "test" if i < 6 else "train"
        name = f"clip{i}.wav"
        seconds = 3.0 if i % 2 else 5.0
        sf.write(tmp_path / name, (0.1 * rng.standard_normal(int(16000 * seconds))).astype(np.float32), 16000)
        rows.append({"audio": name, "frames": "", "frame_count": 0, "label": label, "split": split,
                     "source": "synthetic", "duration_s": seconds})
    path = tmp_path / "index.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture
def separator(tmp_path, monkeypatch):
    import torch

    torch.manual_seed(0)
    path = tmp_path / "tiny.safetensors"
    save_checkpoint(checkpoint_from_model(CLIPSepSeparator(ModelConfig(ngf=2, query_dim=8)), "fake:test-encoder"), path)
    separator = Separator.from_checkpoint(path, device="cpu")
    calls = []

    def fake_embed_text(queries, prompt_ensemble=False):
        calls.append((prompt_ensemble, list(queries)))
        vectors = [np.random.default_rng(sum(map(ord, q))).standard_normal(8) for q in queries]
        return np.stack([v / np.linalg.norm(v) for v in vectors]).astype(np.float32)

    monkeypatch.setattr(separator, "embed_text", fake_embed_text)
    separator.fake_calls = calls
    return separator


def test_mixture_list_is_deterministic(index, tmp_path):
    first = make_eval_mixtures(index, split="test", count=8, seed=3)
    assert first == make_eval_mixtures(index, split="test", count=8, seed=3)
    assert first != make_eval_mixtures(index, split="test", count=8, seed=4)
    assert len(first) == 8
    for mixture in first:
        assert mixture.target_label != mixture.interference_label
        assert "train" not in mixture.target_audio  # all from the test split (clips 0-5)
        assert int(mixture.target_audio[-5]) < 6 and int(mixture.interference_audio[-5]) < 6
    path = tmp_path / "mixtures.json"
    write_mixture_list(first, path)
    assert read_mixture_list(path) == first
    assert json.loads(path.read_text())["mixtures"][0]["crop_samples"] == CROP_SAMPLES


def _one_clip_per_class(root):
    rows = []
    for i, label in enumerate(LABELS):
        sf.write(root / f"one{i}.wav", np.zeros(16000, dtype=np.float32), 16000)
        rows.append({"audio": f"one{i}.wav", "frames": "", "frame_count": 0, "label": label, "split": "test",
                     "source": "synthetic", "duration_s": 1.0})
    with open(root / "one.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return root / "one.csv"


def test_mixtures_are_distinct_and_a_short_split_says_so(index, tmp_path):
    """One clip per class (3 classes) makes 6 distinct ordered pairs: asking for 20 gives those 6, once each,
    and says so; the fixture's 6 clips (2 per class) make 24, all of which 24 draws use."""
    one = _one_clip_per_class(tmp_path)
    said = []
    mixtures = make_eval_mixtures(one, count=20, seed=0, log=said.append)
    pairs = [(m.target_audio, m.interference_audio) for m in mixtures]
    assert len(pairs) == len(set(pairs)) == 6 and [m.index for m in mixtures] == list(range(6))
    assert len(said) == 1 and "only 6 distinct mixtures" in said[0] and "not 20" in said[0]
    said.clear()
    assert len(make_eval_mixtures(one, count=4, seed=0, log=said.append)) == 4 and said == []
    full = make_eval_mixtures(index, count=24, seed=1, log=said.append)
    assert len({(m.target_audio, m.interference_audio) for m in full}) == 24 and said == []
    assert all(m.target_label != m.interference_label for m in full)


@pytest.mark.parametrize("mode", ["label", "ensemble"])
def test_evaluate_report(index, separator, mode):
    mixtures = make_eval_mixtures(index, count=4, seed=0)
    logged = []
    report = evaluate(separator, mixtures, query_mode=mode, log=logged.append)
    assert report.count == 4 and len(logged) == 4
    assert report.overall["sdr"]["n"] == 4
    assert sum(summary["sdr"]["n"] for summary in report.per_class.values()) == 4
    assert set(report.per_class) == {m.target_label for m in mixtures}
    for row in report.rows:
        assert all(math.isfinite(row[key]) for key in ("sdr", "sir", "sar", "sdri", "si_sdr"))
    if mode == "ensemble":
        # paraphrases embedded with the prompt ensemble
        assert any(flag and len(queries) >= 1 for flag, queries in separator.fake_calls)
        assert ["dog barking", "a dog barks"] in [q for _, q in separator.fake_calls] or \
            all(m.target_label != "dog barking" for m in mixtures)
    else:
        assert all(len(queries) == 1 and "|" not in queries[0] for _, queries in separator.fake_calls)
    markdown = report_markdown(report)
    assert "| **all** | 4 |" in markdown and "SDRi" in markdown
    classes = len(report.per_class)
    assert f"| **mean of the class means** | {classes} |" in markdown
    class_means = [summary["sdri"]["mean"] for summary in report.per_class.values()]
    assert report.class_balanced["sdri"]["mean"] == pytest.approx(np.mean(class_means))
    assert sum(summary["sdri"]["n"] for summary in report.by_input_sdr.values()) == 4
    for name, low, high in INPUT_SDR_BINS:
        inside = [row["sdri"] for row in report.rows if low <= row["sdr"] - row["sdri"] < high]
        assert report.by_input_sdr[name]["sdri"]["n"] == len(inside)
        if inside:
            assert report.by_input_sdr[name]["sdri"]["mean"] == pytest.approx(np.mean(inside))
            assert f"| {name} | {len(inside)} |" in markdown
    data = json.loads(report_json(report))
    assert data["count"] == 4 and len(data["mixtures"]) == 4 and data["query_mode"] == mode
    assert data["class_balanced"]["sdri"]["n"] == classes and set(data["by_input_sdr"]) == {b[0] for b in INPUT_SDR_BINS}


def test_sem_formula():
    stats = summary_stats([1.0, 2.0, 3.0, 4.0, float("nan")])
    # sample std (ddof=1) of 1..4 is sqrt(5/3); SEM = that / sqrt(4)
    assert stats["n"] == 4
    assert stats["mean"] == pytest.approx(2.5)
    assert stats["sem"] == pytest.approx(math.sqrt(5 / 3) / 2)
    assert stats["median"] == pytest.approx(2.5)
    assert math.isnan(summary_stats([1.0])["sem"])


# ------------------------------------------------------------------------- baselines and query variants


def _labelsep_separator(tmp_path, names):
    """A tiny LabelSep model as the trainer saves it: the separator checkpoint plus one vector per class key."""
    import torch

    from clipsep_rt.query import save_query_embeddings
    from clipsep_rt.training.baselines import LabelSepSeparator

    torch.manual_seed(1)
    model = LabelSepSeparator(len(names), ModelConfig(ngf=2, query_dim=8, noise_heads=0))
    path = tmp_path / "best.safetensors"
    save_checkpoint(checkpoint_from_model(model.separator, "labelsep"), path)
    save_query_embeddings(path.with_suffix(".queries.npz"), names, model.labels.weight.detach().numpy())
    return Separator.from_checkpoint(path, device="cpu", precision="fp32"), path.with_suffix(".queries.npz")


def test_class_vectors_are_matched_by_the_label_paraphrases():
    from clipsep_rt.errors import ClipsepError
    from clipsep_rt.training.evaluate import ClassVectorQueries, EvalMixture

    vectors = np.eye(4, dtype=np.float32)
    queries = ClassVectorQueries(["dog barking | a dog barks", "violin|fiddle", "violin|viola", "rain"], vectors, "q.npz")

    def mixture(*labels):
        return EvalMixture(0, "t.wav", labels, "i.wav", ("other",))

    picked = queries.candidates(mixture("dog barking", "a dog barks"))  # spaces around "|" in the key
    assert list(picked) == ["dog barking | a dog barks"] and np.array_equal(picked["dog barking | a dog barks"], vectors[0])
    assert queries.class_key(("violin", "viola")) == "violin|viola"  # paraphrases tell same-label classes apart
    assert queries.class_key(("rain", "rainfall")) == "rain"  # else the only key with that canonical label
    with pytest.raises(ClipsepError, match="several vectors"):
        queries.class_key(("violin",))
    with pytest.raises(ClipsepError, match="'wind' has no vector in q.npz") as error:
        queries.class_key(("wind",))
    assert "\n" not in str(error.value)


def test_labelsep_evaluation_looks_up_the_target_class_vector(index, tmp_path):
    from clipsep_rt.training.evaluate import (
        ClassVectorQueries,
        load_mixture,
        query_vector_strategy,
    )

    separator, npz = _labelsep_separator(tmp_path, sorted(LABELS))
    queries = query_vector_strategy(npz)
    assert isinstance(queries, ClassVectorQueries)
    mixtures = make_eval_mixtures(index, count=4, seed=0)
    report = evaluate(separator, mixtures, queries=queries)
    assert report.query_mode == "class vectors (best.queries.npz)"
    for mixture, row in zip(mixtures, report.rows, strict=True):
        key = "|".join(mixture.target_labels)  # the label column text (no spaces in LABELS)
        assert key in LABELS and row["query"] == key
        _, _, mix = load_mixture(mixture)
        right = separator.separate(mix, 16000, embeddings={"q": queries.vectors[key]}).sources["q"]
        wrong_key = next(k for k in LABELS if k != key)
        wrong = separator.separate(mix, 16000, embeddings={"q": queries.vectors[wrong_key]}).sources["q"]
        target, interference, _ = load_mixture(mixture)
        from clipsep_rt.dsp.metrics import separation_metrics

        assert row["sdr"] == pytest.approx(separation_metrics(right, target, interference, mix).sdr, abs=1e-9)
        assert not np.allclose(right, wrong)
    assert "candidate_sdr" not in report.rows[0]


def test_labelsep_missing_class_fails_before_separating(index, tmp_path):
    from clipsep_rt.errors import ClipsepError
    from clipsep_rt.training.evaluate import query_vector_strategy

    separator, npz = _labelsep_separator(tmp_path, ["violin|fiddle", "rain"])
    mixtures = [m for m in make_eval_mixtures(index, count=6, seed=0)]
    assert any(m.target_label == "dog barking" for m in mixtures)
    separator.separate = lambda *a, **k: pytest.fail("separated before checking the classes")
    with pytest.raises(ClipsepError, match="'dog barking' has no vector"):
        evaluate(separator, mixtures, queries=query_vector_strategy(npz))


class _OracleStub:
    """Output0 returns the interference, output1 the target plus a little noise."""

    name = "stub"

    def __init__(self, mixtures):
        from clipsep_rt.training.evaluate import load_mixture

        self.sources = [load_mixture(m) for m in mixtures]
        self.calls = []

    def separate(self, mix, rate, embeddings):
        from clipsep_rt.api import Separation

        self.calls.append(sorted(embeddings))
        target, interference, _ = next(s for s in self.sources if np.array_equal(s[2], mix))
        noise = 0.001 * np.random.default_rng(0).standard_normal(len(mix)).astype(np.float32)
        outputs = {"output0": interference, "output1": target + noise}
        return Separation(rate, mix, {name: outputs[name] for name in embeddings})


def test_pit_oracle_keeps_the_better_output(index, tmp_path):
    from clipsep_rt.query import save_query_embeddings
    from clipsep_rt.training.evaluate import OracleQueries, query_vector_strategy

    save_query_embeddings(tmp_path / "pit.queries.npz", ["output0", "output1"], np.eye(2, 8, dtype=np.float32))
    queries = query_vector_strategy(tmp_path / "pit.queries.npz", oracle=True)
    assert isinstance(queries, OracleQueries) and queries.name == "oracle over output0, output1"
    mixtures = make_eval_mixtures(index, count=4, seed=0)
    stub = _OracleStub(mixtures)
    logged = []
    report = evaluate(stub, mixtures, queries=queries, log=logged.append)
    assert stub.calls == [["output0", "output1"]] * 4  # both outputs from one separation per mixture
    for row in report.rows:
        assert row["query"] == "output1"
        assert row["candidate_sdr"]["output1"] > 20 and row["candidate_sdr"]["output0"] < 0
        assert row["sdr"] == row["candidate_sdr"]["output1"] and row["sdri"] > 10
    assert report.overall["sdr"]["mean"] > 20 and "(via output1)" in logged[0]
    assert json.loads(report_json(report))["mixtures"][0]["candidate_sdr"]["output1"] > 20


def test_pit_oracle_on_a_real_separator_takes_the_max(index, tmp_path):
    import torch

    from clipsep_rt.training.evaluate import OracleQueries

    torch.manual_seed(2)
    path = tmp_path / "pit.safetensors"
    save_checkpoint(checkpoint_from_model(CLIPSepSeparator(ModelConfig(ngf=2, query_dim=8, noise_heads=0)), "pit"), path)
    separator = Separator.from_checkpoint(path, device="cpu", precision="fp32")
    vectors = np.random.default_rng(0).standard_normal((2, 8)).astype(np.float32)
    mixtures = make_eval_mixtures(index, count=3, seed=1)
    report = evaluate(separator, mixtures, queries=OracleQueries(["output0", "output1"], vectors))
    single = evaluate(separator, mixtures, queries=OracleQueries(["output0"], vectors[:1]))
    for row, alone in zip(report.rows, single.rows, strict=True):
        assert row["sdr"] == max(row["candidate_sdr"].values())
        assert row["candidate_sdr"]["output0"] == pytest.approx(alone["sdr"], abs=1e-6)  # batching changes nothing


VARIANTS = {
    "unrelated": "car engine",
    "classes": {
        "dog barking": {"short": "dog", "long": "a big dog barking loudly in a back yard"},
        "violin": {"short": "fiddle", "long": "a person playing the violin in a concert hall"},
        "rain": {"short": "rainfall", "long": "heavy rain falling on a tin roof"},
    },
}


def test_query_variants_report(index, separator):
    from clipsep_rt.training.query_variants import (
        VARIANT_METRICS,
        QueryVariants,
        evaluate_query_variants,
        variant_report_json,
        variant_report_markdown,
    )

    mixtures = make_eval_mixtures(index, count=3, seed=0)
    logged = []
    report = evaluate_query_variants(separator, mixtures, VARIANTS, log=logged.append)
    assert report.count == 3 and len(report.rows) == 12 and len(logged) == 3
    assert [entry["variant"] for entry in report.summary] == ["label", "short", "long", "unrelated"]
    for entry in report.summary:
        assert set(entry) == {"variant", "title", "n", *VARIANT_METRICS}
        assert entry["n"] == 3 and entry["sdri"]["n"] == 3
        assert set(entry["energy_db"]) == {"n", "mean", "sem", "median"} and math.isfinite(entry["energy_db"]["mean"])
    for mixture in mixtures:
        texts = {row["variant"]: row["query"] for row in report.rows if row["index"] == mixture.index}
        entry = VARIANTS["classes"][mixture.target_label]
        assert texts == {"label": mixture.target_label, "short": entry["short"], "long": entry["long"], "unrelated": "car engine"}
    embedded = [q for _, queries in separator.fake_calls for q in queries]
    assert len(embedded) == len(set(embedded))  # each text embedded once, in one batch
    markdown = variant_report_markdown(report)
    table = [line for line in markdown.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(table) == 5 and "| unrelated (car engine) | 3 |" in markdown and "energy" in table[0]
    data = json.loads(variant_report_json(report))
    assert data["count"] == 3 and data["unrelated"] == "car engine" and len(data["summary"]) == 4
    assert len(data["mixtures"]) == 12
    # the unrelated query can be replaced; a class without paraphrases or an unrelated query that is a label fails
    assert QueryVariants.from_dict(VARIANTS, unrelated="siren").unrelated == "siren"
    from clipsep_rt.errors import ClipsepError

    with pytest.raises(ClipsepError, match="no short/long paraphrases for class\\(es\\) 'rain'"):
        evaluate_query_variants(separator, make_eval_mixtures(index, count=6, seed=0),
                                {k: v for k, v in VARIANTS["classes"].items() if k != "rain"})
    with pytest.raises(ClipsepError, match="unrelated query 'Violin' is a label"):
        evaluate_query_variants(separator, make_eval_mixtures(index, count=6, seed=0),
                                QueryVariants.from_dict(VARIANTS, unrelated="Violin"))
    with pytest.raises(ClipsepError, match="needs a non-empty 'long'"):
        QueryVariants.from_dict({"rain": {"short": "rain"}})


def test_energy_ratio():
    from clipsep_rt.dsp.metrics import ENERGY_FLOOR_DB, energy_ratio_db

    mix = np.ones(100, dtype=np.float32)
    assert energy_ratio_db(0.5 * mix, mix) == pytest.approx(20 * math.log10(0.5))
    assert energy_ratio_db(np.zeros(100), mix) == ENERGY_FLOOR_DB
    assert math.isnan(energy_ratio_db(mix, np.zeros(100)))
