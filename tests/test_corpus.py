"""The offline corpus builder on a small fake package tree (no apt, no real packages)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import soundfile as sf

from clipsep_rt.training import taxonomy
from clipsep_rt.training.corpus import audio_hash, build_corpus, split_sources, trim_silence
from clipsep_rt.training.index import read_index

SR = 16000


def _tone(freq, seconds=1.5, rate=SR, seed=0):
    t = np.arange(int(seconds * rate)) / rate
    noise = np.random.default_rng(seed).standard_normal(len(t)) * 0.01
    x = 0.4 * np.sin(2 * np.pi * freq * t) + noise
    pad = np.zeros(int(0.3 * rate))
    return np.concatenate([pad, x, pad]).astype(np.float32)


def test_taxonomy_rules_map_paths():
    z = taxonomy.ZAD_ZIP + "!"
    cases = {
        z + "audio/actor/fauna/animal/cattle_3.ogg": "cow",
        z + "audio/attack/weapon/swordhit_12a.ogg": "sword_clash",
        z + "audio/ambient/weather/thunder1.ogg": "thunder",
        z + "audio/voice/latin/civ/civ_male_attack.ogg": "man_speaking",
        z + "audio/actor/singlesteps/fs_grass_4.ogg": "footsteps",
        taxonomy.WESNOTH + "/wolf-growl-2.ogg": "wolf",
        taxonomy.WESNOTH + "/horse-hit-1.ogg": "horse",
        taxonomy.HEDGEWARS + "/Pirate/Hello.ogg": "cartoon_voice",
        taxonomy.ASTERISK + "/en_US_f_Allison/activated.wav": "woman_speaking",
        taxonomy.HYDROGEN + "/GMRockKit/Kick-Softer.flac": "kick_drum",
        taxonomy.HYDROGEN + "/GMRockKit/Snare-Hard.flac": "snare_drum",
    }
    for key, name in cases.items():
        rule = taxonomy.classify(key)
        assert rule is not None and rule.name == name, key
        assert "|" in rule.label
    assert taxonomy.classify(z + "audio/interface/ui/chat_alert.ogg") is None
    assert taxonomy.classify(taxonomy.WESNOTH + "/wolf-growl-2.txt") is None
    assert all(len(i.label.split("|")) >= 2 for i in taxonomy.INSTRUMENTS)


def test_trim_and_hash():
    x = _tone(440)
    y = trim_silence(x)
    assert len(y) < len(x) and abs(len(y) - 1.5 * SR) < 0.05 * SR
    assert audio_hash(x) == audio_hash(x.copy()) != audio_hash(x * 0.5)


def test_split_sources_disjoint_and_complete():
    sources = [f"s{i}" for i in range(23)]
    split = split_sources(sources, seed=1)
    assert set(split) == set(sources)
    assert {"train", "val", "test"} <= set(split.values())
    assert sum(v == "train" for v in split.values()) >= 17
    assert set(split_sources(sources[:3], seed=5).values()) == {"train", "val", "test"}


def _fake_tree(root: Path):
    wes = root / taxonomy.WESNOTH
    wes.mkdir(parents=True)
    for i in range(4):  # wolf: 4 distinct sources
        ext = "ogg" if i else "wav"
        sf.write(wes / f"wolf-growl-{i}.{ext}", _tone(200 + 50 * i, seed=i), SR)
    # the same sound under two names -> one duplicate
    sf.write(wes / "wolf-hit-9.wav", _tone(200, seed=0), SR)
    sf.write(wes / "gunshot.ogg", _tone(900), SR)  # only 1 source -> dropped class
    sf.write(wes / "human-die-1.ogg", _tone(300)[int(0.3 * SR) : int(0.55 * SR)], SR)  # too short
    zpath = root / taxonomy.ZAD_ZIP
    zpath.parent.mkdir(parents=True)
    tmp = root / "tmp"
    tmp.mkdir()
    with zipfile.ZipFile(zpath, "w") as archive:
        for i in range(5):
            f = tmp / f"cattle_{i}.wav"
            sf.write(f, _tone(120 + 30 * i, rate=44100, seed=10 + i), 44100)
            archive.write(f, f"audio/actor/fauna/animal/cattle_{i}.wav")
        archive.writestr("art/textures/x.png", b"not audio")
        for i in range(12):  # short footsteps, grouped into >= 1.5 s clips
            f = tmp / f"fs_{i}.wav"
            sf.write(f, _tone(1000 + 100 * i, seconds=0.4, seed=20 + i), SR)
            archive.write(f, f"audio/actor/singlesteps/fs_grass_{i}.wav")
    hd = root / taxonomy.HEDGEWARS / "Pirate"
    hd.mkdir(parents=True)
    for i in range(3):
        sf.write(hd / f"Hello{i}.ogg", _tone(500 + 40 * i, seed=30 + i), SR)


def test_build_corpus_on_fake_tree(tmp_path):
    root = tmp_path / "root"
    _fake_tree(root)
    out = tmp_path / "out"
    logs = []
    index = build_corpus(out, packages_root=root, seed=0, log=logs.append)
    clips = read_index(index)
    assert clips and all(c.audio.is_file() for c in clips)
    names = {c.audio.parent.name for c in clips}
    assert names == {"wolf", "cow", "cartoon_voice", "footsteps"}
    wolf_sources = {c.source for c in clips if c.audio.parent.name == "wolf"}
    assert len(wolf_sources) == 4 and not any("wolf-hit-9" in s for s in wolf_sources)
    by_source = {}
    for c in clips:
        assert by_source.setdefault(c.source, c.split) == c.split  # one split per source
        assert c.duration_s >= 1.0
        info = sf.info(c.audio)
        assert info.samplerate == SR and info.channels == 1
    for name in names:
        assert {c.split for c in clips if c.audio.parent.name == name} == {"train", "val", "test"}
    cow = [c for c in clips if c.audio.parent.name == "cow"]
    assert cow[0].paraphrases[0] == "cow mooing" and len(cow) == 5
    assert sum(c.source.startswith("group:") for c in clips) >= 2
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["skipped"]["duplicates"] == 1
    assert manifest["skipped"]["too_short"] == 1
    assert "gunshot" in manifest["dropped_classes"]
    assert manifest["classes"]["wolf"]["sources"] == 4
    assert sum(manifest["classes"]["cow"]["clips"].values()) == 5
    assert manifest["num_clips"] == len(clips)
    assert "package_versions" in manifest and "build_command" in manifest
