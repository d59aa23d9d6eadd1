"""The real-sound dev set builder on a small fake tree of held-out packages (generated WAVs)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from clipsep_rt.dsp.levels import active_mask, frame_energies
from clipsep_rt.errors import ClipsepError
from clipsep_rt.training import devset, devset_tables, hierarchy, taxonomy
from clipsep_rt.training.devset import build_devset
from clipsep_rt.training.devset_reader import load_devset
from clipsep_rt.training.devset_audio import fill_window, tir_db

SR = 16000
N = devset.WINDOW_SAMPLES
FILES = {  # path inside package -> (kind, seconds, seed); each class gets two distinct files
    "scratch/usr/share/scratch/Media/Sounds/Animal/Dog1.wav": ("bark", 0.2, 1),
    "scratch/usr/share/scratch/Media/Sounds/Animal/Dog2.wav": ("bark", 0.15, 2),
    "simutrans-pak64/usr/share/games/simutrans/pak/sound/truck.wav": ("rumble", 6.0, 3),
    "simutrans-pak64/usr/share/games/simutrans/pak/sound/bus.wav": ("rumble", 1.2, 4),
    "sound-icons/usr/share/sounds/sound-icons/trumpet-1.wav": ("tone", 1.5, 440),
    "sound-icons/usr/share/sounds/sound-icons/trumpet-12.wav": ("tone", 0.8, 620),
    "sound-icons/usr/share/sounds/sound-icons/cembalo-1.wav": ("pluck", 0.5, 330),
    "sound-icons/usr/share/sounds/sound-icons/cembalo-2.wav": ("pluck", 0.4, 500),
    "sound-icons/usr/share/sounds/sound-icons/pipe.wav": ("tone", 1.0, 300),  # not in the table: unused
}
HELDOUT = "# test list\nscratch\nsimutrans-pak64\nsound-icons   # comment\n"


def _clip(kind: str, seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    if kind == "bark":
        x = rng.standard_normal(len(t)) * np.exp(-t * 20)
    elif kind == "rumble":
        x = np.convolve(rng.standard_normal(len(t)), np.ones(40) / 40, "same") * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
    elif kind == "tone":
        x = sum(np.sin(2 * np.pi * seed * k * t) / k for k in range(1, 5))
    else:  # pluck
        x = sum(np.sin(2 * np.pi * seed * k * t) / k for k in range(1, 8)) * np.exp(-t * 6)
    x = 0.5 * x / np.abs(x).max()
    pad = np.zeros(int(0.3 * SR))  # leading/trailing silence the builder trims
    return np.concatenate([pad, x, pad]).astype(np.float32)


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("heldout")
    pkgs = root / "pkgs"
    for rel, (kind, seconds, seed) in FILES.items():
        path = pkgs / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, _clip(kind, seconds, seed), SR, subtype="PCM_16")
    heldout = root / "heldout_packages.txt"
    heldout.write_text(HELDOUT)
    return pkgs, heldout


@pytest.fixture(scope="module")
def built(tree, tmp_path_factory):
    pkgs, heldout = tree
    out = tmp_path_factory.mktemp("devset")
    manifest = build_devset(pkgs, heldout, out, n_mixtures=8, seed=0, oracle=True, log=lambda *_: None)
    return out, manifest


def test_classes_and_queries(built):
    out, manifest = built
    assert set(manifest["classes"]) == {"dog", "truck", "trumpet", "harpsichord"}
    assert sum(manifest["classes"].values()) == 8 and min(manifest["classes"].values()) == 2  # round-robin
    assert all("pipe.wav" not in key for key in manifest["label_sources"])
    labels = taxonomy.all_class_labels()
    for m in manifest["mixtures"]:
        assert m["target_labels"] == labels[m["target_class"]].split("|")
        assert m["paraphrase"].lower() not in {x.lower() for x in m["target_labels"]}
        assert m["target_category"] == taxonomy.category(m["target_class"])
        for a, b in ((m["target_class"], m["interference_class"]), (m["target_class"], m["unrelated_class"]),
                     (m["interference_class"], m["unrelated_class"])):
            assert not hierarchy.classes_overlap(a, b)
        assert taxonomy.category(m["unrelated_class"]) != m["target_category"]
        assert m["target_source"].split("/", 1)[0] in ("scratch", "simutrans-pak64", "sound-icons")
        assert np.isfinite(m["oracle_ibm_sdri_db"])
    assert (out / "README.md").read_text().startswith("# Dev set")


def test_windows_filled_scaled_and_tir_as_drawn(built):
    out, manifest = built
    for m in manifest["mixtures"]:
        t, rate = sf.read(out / m["target_audio"], dtype="float32")
        i, _ = sf.read(out / m["interference_audio"], dtype="float32")
        assert rate == SR and t.shape == (N,) and i.shape == (N,)
        assert sf.info(out / m["target_audio"]).subtype == "FLOAT"
        for x in (t, i):  # filled: no stretch of 20 ms frames 60 dB down longer than 0.26 s
            db = 10 * np.log10(frame_energies(x)[0] + 1e-20)
            quiet = db < db.max() - 60
            run = longest = 0
            for q in quiet:
                run = run + 1 if q else 0
                longest = max(longest, run)
            assert longest <= 13, (m["index"], longest)
        assert -5 <= m["tir_db"] <= 5
        assert tir_db(t, i) == pytest.approx(m["tir_db"], abs=0.01)
        assert np.abs(t + i).max() < 1.0 and np.abs(t).max() < 1.0 and np.abs(i).max() < 1.0


def test_deterministic_with_seed(tree, built, tmp_path):
    pkgs, heldout = tree
    out, manifest = built
    again = build_devset(pkgs, heldout, tmp_path / "again", n_mixtures=8, seed=0, oracle=False, log=lambda *_: None)
    keys = ("target_class", "interference_class", "unrelated_class", "tir_db", "target_source", "interference_source")
    assert [[m[k] for k in keys] for m in again["mixtures"]] == [[m[k] for k in keys] for m in manifest["mixtures"]]
    for m in manifest["mixtures"]:
        for rel in (m["target_audio"], m["interference_audio"]):
            # samples, not bytes: libsndfile's PEAK chunk of float WAVs holds a time stamp
            assert np.array_equal(sf.read(out / rel, dtype="float32")[0], sf.read(tmp_path / "again" / rel, dtype="float32")[0])
    other = build_devset(pkgs, heldout, tmp_path / "other", n_mixtures=8, seed=1, oracle=False, log=lambda *_: None)
    assert [m["tir_db"] for m in other["mixtures"]] != [m["tir_db"] for m in manifest["mixtures"]]


def test_refuses_packages_not_held_out(tree, tmp_path):
    pkgs, heldout = tree
    foreign = pkgs / "wesnoth-1.16-data" / "usr" / "share" / "sounds"
    foreign.mkdir(parents=True)
    try:
        with pytest.raises(ClipsepError, match="not in the held-out list"):
            build_devset(pkgs, heldout, tmp_path / "out", n_mixtures=4, oracle=False, log=lambda *_: None)
    finally:
        for path in sorted(foreign.parents[2].rglob("*"), reverse=True):
            path.rmdir()
        foreign.parents[2].rmdir()
    listed = tmp_path / "list.txt"
    listed.write_text(HELDOUT + "openclonk-data\n")
    with pytest.raises(ClipsepError, match="openclonk-data"):
        build_devset(pkgs, listed, tmp_path / "out", n_mixtures=4, oracle=False, log=lambda *_: None)


def test_existing_devset_has_its_audio_rebuilt_and_checked(tree, built, tmp_path):
    import shutil

    pkgs, heldout = tree
    out, manifest = built
    copy = tmp_path / "committed"
    shutil.copytree(out, copy)
    shutil.rmtree(copy / "audio")  # a fresh checkout: devset.json and README.md, no audio
    before = (copy / "devset.json").read_bytes()
    restored = build_devset(pkgs, heldout, copy, n_mixtures=8, oracle=False, log=lambda *_: None)
    assert (copy / "devset.json").read_bytes() == before and restored["mixtures"] == manifest["mixtures"]
    for m in manifest["mixtures"]:
        a, _ = sf.read(out / m["target_audio"], dtype="float32")
        b, _ = sf.read(copy / m["target_audio"], dtype="float32")
        assert np.array_equal(a, b)
    with pytest.raises(ClipsepError, match="another dev set"):  # other mixtures than the committed ones
        build_devset(pkgs, heldout, copy, n_mixtures=8, seed=1, oracle=False, log=lambda *_: None)


def test_load_devset(built):
    out, manifest = built
    ds = load_devset(out)
    assert len(ds) == 8 and ds.window_samples == N
    t, i = ds.load_mixture(3)
    assert t.dtype == np.float32 and t.shape == i.shape == (N,)
    assert ds.mixtures[3].target_class == manifest["mixtures"][3]["target_class"]
    with pytest.raises(ClipsepError, match="devset.json"):
        load_devset(out / "nothing" / "devset.json")


def test_load_devset_names_bad_audio(built, tmp_path):
    out, manifest = built
    data = json.loads((out / "devset.json").read_text())
    data["mixtures"][0]["target_audio"] = "audio/missing.wav"
    (tmp_path / "devset.json").write_text(json.dumps(data))
    ds = load_devset(tmp_path / "devset.json")
    with pytest.raises(ClipsepError, match="missing.wav"):
        ds.load_mixture(0)


def test_fill_window_crops_and_loops():
    rng = np.random.default_rng(0)
    long = _clip("rumble", 6.0, 5)[int(0.3 * SR) : -int(0.3 * SR)]
    window, how = fill_window(long, N, rng)
    assert how == "crop" and window.shape == (N,)
    short = _clip("bark", 0.2, 6)[int(0.3 * SR) : -int(0.3 * SR)]
    window, how = fill_window(short, N, rng)
    assert how == "loop-gaps" and window.shape == (N,)
    hum = _clip("tone", 0.5, 200)[int(0.3 * SR) : -int(0.3 * SR)]
    window, how = fill_window(hum, N, rng)
    assert how == "loop-crossfade" and window.shape == (N,)
    assert active_mask(frame_energies(window)[0], 20).all()


def test_tables_are_consistent():
    labels = taxonomy.all_class_labels()
    for package, pattern, cls in devset_tables.HELDOUT_TABLE:
        assert cls in (None, devset_tables.AUTO) or cls in labels, (package, pattern, cls)
    devset.check_paraphrases(devset.PARAPHRASES)
    assert set(PARAPHRASE_CLASSES_USED()) <= set(devset.PARAPHRASES)


def PARAPHRASE_CLASSES_USED():
    return {cls for _, _, cls in devset_tables.HELDOUT_TABLE if cls not in (None, devset_tables.AUTO)}
