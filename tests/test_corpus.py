"""The corpus v3 builder on a small fake package tree (no apt, no real packages)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from clipsep_rt.errors import ClipsepError
from clipsep_rt.training import taxonomy
from clipsep_rt.training.corpus import CROSS_SOURCE_PACKAGES, build_corpus, read_allowed, read_excluded
from clipsep_rt.training.corpus_dedup import Deduplicator, audio_hash, fingerprint, trim_silence
from clipsep_rt.training.corpus_write import MANIFEST_VERSION, split_sources
from clipsep_rt.training.taxonomy_instruments import INSTRUMENTS, SOUNDFONTS
from clipsep_rt.training.taxonomy_speech import TTS_VOICES, VOICES
from clipsep_rt.training.index import read_index

SR = 16000
WES = "wesnoth-1.16-data/usr/share/games/wesnoth/1.16/data/core/sounds"
ZAD = "0ad-data/usr/share/games/0ad/mods/public/public.zip"


def _tone(freq, seconds=1.5, rate=SR, seed=0):
    t = np.arange(int(seconds * rate)) / rate
    noise = np.random.default_rng(seed).standard_normal(len(t)) * 0.01
    x = 0.4 * np.sin(2 * np.pi * freq * t) + noise
    pad = np.zeros(int(0.3 * rate))
    return np.concatenate([pad, x, pad]).astype(np.float32)


def test_taxonomy_rules_map_paths():
    cases = {
        ZAD + "!audio/actor/fauna/animal/cattle_3.ogg": "cow",
        ZAD + "!audio/attack/weapon/swordhit_12a.ogg": "sword_clash",
        ZAD + "!audio/ambient/weather/thunder1.ogg": "thunder",
        ZAD + "!audio/actor/singlesteps/fs_grass_4.ogg": "footsteps",
        WES + "/wolf-growl-2.ogg": "wolf",
        "hedgewars-data/usr/share/games/hedgewars/Data/Sounds/voices/Pirate/Hello.ogg": "cartoon_voice",
        "asterisk-core-sounds-en-wav/usr/share/asterisk/sounds/en_US_f_Allison/activated.wav": "woman_speaking",
        "asterisk-core-sounds-it-wav/usr/share/asterisk/sounds/it_IT_m_Carlo/activated.wav": "man_speaking",
        "hydrogen-drumkits/usr/share/hydrogen/data/drumkits/GMRockKit/Kick-Softer.flac": "kick_drum",
        "lmms-common/usr/share/lmms/samples/drums/snare01.ogg": "snare_drum",
        "lmms-common/usr/share/lmms/samples/instruments/violin_fingered01.ogg": "violin",
        "naev-data/usr/share/naev/dat/snd/music/machina.ogg": "music",
        "scorched3d-data/usr/share/games/scorched3d/data/wav/misc/dog2.wav": "dog",
        ZAD + "!audio/voice/latin/civ/civ_male_attack.ogg": "man_speaking",
        "triplea/usr/share/triplea/sounds/battle_land_01_sword_fighting.mp3": "sword_clash",
        "etw-data/usr/share/games/etw/crowd/crowd08.wav": "crowd",
        "minetest-data/usr/share/games/minetest/games/minetest_game/mods/fire/sounds/fire_large.ogg": "fire",
    }
    for key, name in cases.items():
        hit = taxonomy.classify_any(key)
        assert hit is not None and hit[0].name == name, key
        assert "|" in hit[0].label
    assert taxonomy.classify_any(ZAD + "!audio/interface/ui/chat_alert.ogg") is None
    assert taxonomy.classify_any(WES + "/wolf-growl-2.txt") is None
    # "disembark" is no dog, a spoken letter is no sound effect, the archive name is no zipper
    assert taxonomy.classify(WES + "/disembark.ogg") is None or taxonomy.classify(WES + "/disembark.ogg").name != "dog"
    assert taxonomy.classify_any("qabcs-data/usr/share/qabcs/abcs/en/sounds/a.ogg") is None
    assert taxonomy.classify(ZAD + "!audio/ambient/water/river_1.ogg").name == "river"
    assert taxonomy.classify("triplea/usr/share/triplea/sounds/battle_sea_01.mp3") is None or taxonomy.classify("triplea/usr/share/triplea/sounds/battle_sea_01.mp3").name != "bat"
    assert taxonomy.classify_any("megaglest-data/usr/share/games/megaglest/techs/x/units/swordman/sounds/swordman_ack4.wav") is None
    assert all(len(i.label.split("|")) >= 3 for i in INSTRUMENTS)
    assert taxonomy.category("cow") == "animals" and taxonomy.category("violin") == "instruments"
    assert len({v.speaker for v in VOICES} | {v.speaker for v in TTS_VOICES}) >= 8


def test_v3_package_rules_soundfonts_and_cross_source():
    cases = {  # packages added in v3: package rules before the keyword rules
        "bucklespring-data/usr/share/bucklespring/wav/1c-0.wav": "keyboard_typing",
        "warmux-data/usr/share/games/warmux/sound/default/voices/fire1.ogg": "cartoon_voice",  # said, not burning
        "warmux-data/usr/share/games/warmux/sound/default/voices/injured_high1.ogg": "cartoon_voice",
        "teeworlds-data/usr/share/games/teeworlds/data/audio/foley_foot_left-01.wv": "footsteps",  # WavPack
        "grandorgue-demo/usr/share/GrandOrgue/packages/demo.orgue!Montre8/043-G.wav": "church_organ",
        "berusky2-data/usr/share/games/berusky2/sound/sound/Ptak5.wav": "birds",
        "freeciv-data/usr/share/games/freeciv/stdmusic/x--Dawning_Fanfare.ogg": "music",
        "exadrums/usr/share/exadrums/RideBell.wav": "cymbal",
        "chuck-data/usr/share/doc/chuck-data/examples/data/snare-hop.wav": "snare_drum",
        "knavalbattle/usr/share/knavalbattle/sounds/ship-player-shoot-water.ogg": "splash",
    }
    for key, name in cases.items():
        hit = taxonomy.classify_any(key)
        assert hit is not None and hit[0].name == name, key
    assert taxonomy.classify_any("bucklespring-data/usr/share/bucklespring/wav/1c-0.wav")[0].group_short  # one-shots, grouped
    unlabelled = (
        "lomiri-sounds/usr/share/sounds/lomiri/ringtones/Glass marimba.ogg",  # a ringtone, no glass breaking
        "mame-data/usr/share/games/mame/samples/floppy/35_step_1_1.wav",  # a drive head, no footstep
        "boswars-data/usr/share/games/boswars/units/tank/tank.ready.wav",  # spoken
        "pinball-data/usr/share/games/pinball/tux/flip.wav",
        "neverball-common/usr/share/games/neverball/snd/eagle.ogg",  # a spoken golf score
        "sound-theme-freedesktop/usr/share/sounds/freedesktop/stereo/audio-test-signal.oga",
    )
    for key in unlabelled:
        assert taxonomy.classify_any(key) is None, key
    fonts = {f.package for f in SOUNDFONTS}
    assert "fluid-soundfont-gm" not in fonts and {"timgm6mb-soundfont", "csound-soundfont", "denemo-data"} <= fonts
    assert "timgm6mb-soundfont" not in CROSS_SOURCE_PACKAGES and "denemo-data" in CROSS_SOURCE_PACKAGES
    names = set(taxonomy.all_class_labels())
    assert all(set(f.skip) <= names for f in SOUNDFONTS)
    assert all(cls is None or cls in names for _, _, cls in taxonomy.PACKAGE_RULES)
    assert not {"csound-soundfont", "denemo-data", "timgm6mb-soundfont"} & set(taxonomy.UNUSED_PACKAGES)


def test_trim_hash_and_fingerprint():
    x = _tone(440)
    y = trim_silence(x)
    assert len(y) < len(x) and abs(len(y) - 1.5 * SR) < 0.05 * SR
    assert audio_hash(x) == audio_hash(x.copy()) != audio_hash(x * 0.5)
    assert float(fingerprint(y) @ fingerprint(y * 0.5)) > 0.999  # gain does not hide a copy
    assert float(fingerprint(y) @ fingerprint(trim_silence(_tone(1500)))) < 0.99
    dedup = Deduplicator()
    assert dedup.seen(y, "a") is None and dedup.seen(y * 0.8, "b") == "a"


def test_split_sources_disjoint_and_complete():
    sources = [f"s{i}" for i in range(23)]
    split = split_sources(sources, seed=1)
    assert set(split) == set(sources)
    assert {"train", "val", "test"} <= set(split.values())
    assert sum(v == "train" for v in split.values()) >= 17
    assert set(split_sources(sources[:3], seed=5).values()) == {"train", "val", "test"}


def _fake_tree(root: Path):
    wes = root / WES
    wes.mkdir(parents=True)
    for i in range(4):  # wolf: 4 distinct sources
        sf.write(wes / f"wolf-growl-{i}.{'ogg' if i else 'wav'}", _tone(200 * 1.35**i, seed=i), SR)
    sf.write(wes / "wolf-hit-9.wav", _tone(200, seed=0), SR)  # the same sound under two names
    sf.write(wes / "gunshot.ogg", _tone(900), SR)  # only 1 source -> dropped class
    sf.write(wes / "human-die-1.ogg", _tone(300)[int(0.3 * SR) : int(0.55 * SR)], SR)  # too short
    doc = root / "wesnoth-1.16-data/usr/share/doc/wesnoth-1.16-data"
    doc.mkdir(parents=True)
    (doc / "copyright").write_text("Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\nFiles: *\nLicense: GPL-2+\n")
    (root / "wesnoth-1.16-data/.deb-version").write_text("1:1.16.9-1\n")
    zpath = root / ZAD
    zpath.parent.mkdir(parents=True)
    tmp = root.parent / "tmp"
    tmp.mkdir()
    with zipfile.ZipFile(zpath, "w") as archive:
        for i in range(5):
            f = tmp / f"cattle_{i}.wav"
            sf.write(f, _tone(120 * 1.3**i, rate=44100, seed=10 + i), 44100)
            archive.write(f, f"audio/actor/fauna/animal/cattle_{i}.wav")
        archive.writestr("art/textures/x.png", b"not audio")
        for i in range(12):  # short footsteps, grouped into >= 1.5 s clips
            f = tmp / f"fs_{i}.wav"
            sf.write(f, _tone(300 * 1.3**i, seconds=0.4, seed=20 + i), SR)
            archive.write(f, f"audio/actor/singlesteps/fs_grass_{i}.wav")
    hd = root / "hedgewars-data/usr/share/games/hedgewars/Data/Sounds/voices/Pirate"
    hd.mkdir(parents=True)
    for i in range(3):
        sf.write(hd / f"Hello{i}.ogg", _tone(500 * 1.4**i, seed=30 + i), SR)
    # a held-out package: its wolves go to cross_source, its lone chicken class is dropped;
    # one of its files re-encodes a training wolf (44.1 kHz): a near duplicate, removed
    mg = root / "megaglest-data/usr/share/games/megaglest/techs/units/wolf/sounds"
    mg.mkdir(parents=True)
    for i in range(2):
        sf.write(mg / f"wolf_attack{i}.wav", _tone(900 * 1.4**i, seed=40 + i), SR)
    sf.write(mg / "chicken1.wav", _tone(1300, seed=50), SR)
    sf.write(mg / "wolf_copy.wav", _tone(200, rate=44100, seed=0), 44100)
    # a package that is not allowed: never read
    bad = root / "not-allowed-data/usr/share/sounds"
    bad.mkdir(parents=True)
    for i in range(4):
        sf.write(bad / f"wolf-{i}.wav", _tone(3000 + i * 100, seed=60 + i), SR)


def test_build_corpus_on_fake_tree(tmp_path):
    root = tmp_path / "root"
    _fake_tree(root)
    out = tmp_path / "out"
    logs = []
    allowed = ["wesnoth-1.16-data", "0ad-data", "hedgewars-data", "megaglest-data"]
    index = build_corpus(out, root, seed=0, allowed=allowed, cross_source=("megaglest-data",), workers=1, log=logs.append)
    clips = read_index(index)
    assert clips and all(c.audio.is_file() for c in clips)
    names = {c.audio.parent.name for c in clips}
    assert names == {"wolf", "cow", "cartoon_voice", "footsteps"}
    assert not any("not-allowed" in c.source for c in clips)
    wolf = [c for c in clips if c.audio.parent.name == "wolf"]
    assert len({c.source for c in wolf if c.split != "cross_source"}) == 4 and not any("wolf-hit-9" in c.source for c in wolf)
    cross = [c for c in clips if c.split == "cross_source"]
    assert {c.audio.parent.name for c in cross} == {"wolf"} and len(cross) == 2  # the re-encoded copy is gone
    assert all("megaglest-data/" in c.source for c in cross)
    assert not any("megaglest-data/" in c.source for c in clips if c.split != "cross_source")
    by_source = {}
    for c in clips:
        assert by_source.setdefault(c.source, c.split) == c.split  # one split per source
        assert c.duration_s >= 1.0
        info = sf.info(c.audio)
        assert info.samplerate == SR and info.channels == 1
    for name in names:
        assert {"train", "val", "test"} <= {c.split for c in clips if c.audio.parent.name == name}
    cow = [c for c in clips if c.audio.parent.name == "cow"]
    assert cow[0].paraphrases[0] == "cow mooing" and len(cow) == 5
    assert sum(c.source.startswith("group:") for c in clips) >= 2
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["skipped"]["duplicates"] == 2
    assert manifest["skipped"]["too_short"] == 1
    assert "gunshot" in manifest["dropped_classes"] and manifest["dropped_classes"]["chicken"] == "only in cross-source packages"
    assert manifest["classes"]["wolf"]["sources"] == 4
    assert manifest["split_clips"]["cross_source"] == 2 and manifest["split_hours"]["cross_source"] > 0
    assert manifest["cross_source"] == {"packages": ["megaglest-data"], "classes_also_in_train": 1, "classes": ["wolf"]}
    assert manifest["num_clips"] == len(clips) == sum(manifest["split_clips"].values())
    assert manifest["refused_packages"] == ["not-allowed-data"]
    wes = manifest["packages"]["wesnoth-1.16-data"]
    assert wes["licence"] == "GPL-2+" and wes["version"] == "1:1.16.9-1" and wes["copyright_file"].endswith("copyright")
    assert manifest["package_versions"]["wesnoth-1.16-data"] == "1:1.16.9-1"
    assert manifest["classes_from_two_or_more_packages"]["count"] == 0
    assert "build_command" in manifest and manifest["category_hours"]["animals"]["classes"] == 2
    assert manifest["version"] == MANIFEST_VERSION == 3 and manifest["warnings"] == []
    assert manifest["excluded_clips"]["skipped"] == 0 and manifest["skipped"]["excluded_clips"] == 0
    # the same tree and seed give the same manifest (build time and command aside)
    again = tmp_path / "again"
    build_corpus(again, root, seed=0, allowed=allowed, cross_source=("megaglest-data",), workers=2, log=logs.append)
    second = json.loads((again / "manifest.json").read_text())
    for m in (manifest, second):
        m.pop("build_seconds"), m.pop("build_command")
    assert manifest == second


def test_read_allowed_and_errors(tmp_path):
    path = tmp_path / "allowed.txt"
    path.write_text("# comment\n0ad-data\n\nflite  # tool\n")
    assert read_allowed(path) == ["0ad-data", "flite"]
    with pytest.raises(ClipsepError, match="allowed packages"):
        read_allowed(tmp_path / "missing.txt")
    with pytest.raises(ClipsepError, match="packages root"):
        build_corpus(tmp_path / "o", tmp_path / "nope", log=lambda m: None)


def test_cross_source_split_reads_and_evaluates(tmp_path):
    from clipsep_rt.training.evaluate import make_eval_mixtures
    from clipsep_rt.training.index import Clip, write_index

    clips = []
    for name, freq in (("cow", 150), ("violin", 880), ("rain", 3000)):
        for i, split in enumerate(("train", "cross_source", "cross_source")):
            path = tmp_path / f"{name}{i}.wav"
            sf.write(path, _tone(freq * (1 + 0.1 * i), seed=i), SR)
            clips.append(Clip(path, None, 0, f"{name}|a {name}", split, f"pkg{i}/{name}{i}", 2.1))
    write_index(tmp_path / "index.csv", clips)
    assert {c.split for c in read_index(tmp_path / "index.csv")} == {"train", "cross_source"}
    mixtures = make_eval_mixtures(tmp_path / "index.csv", split="cross_source", count=4, seed=0)
    assert len(mixtures) == 4


def test_excluded_clips_are_skipped_counted_and_reported(tmp_path):
    root = tmp_path / "root"
    _fake_tree(root)
    listing = tmp_path / "excluded_clips.txt"
    wes = WES.split("/", 1)[1]
    listing.write_text(
        "# copies of reserved clips\n\n"
        f"wesnoth-1.16-data\t{wes}/wolf-growl-0.wav\n"  # its copy wolf-hit-9.wav goes too
        f"0ad-data\t{ZAD.split('/', 1)[1]}!audio/actor/fauna/animal/cattle_4.wav\n"  # an archive member
        f"wesnoth-1.16-data\t{wes}/no-such-file.ogg\n"  # stale: a warning
        "not-allowed-data\tusr/share/sounds/wolf-1.wav\n",  # a package the build never reads
        encoding="utf-8")
    keys = read_excluded(listing)
    assert keys[0] == f"{WES}/wolf-growl-0.wav" and keys[1].endswith("!audio/actor/fauna/animal/cattle_4.wav") and len(keys) == 4
    out, logs = tmp_path / "out", []
    allowed = ["wesnoth-1.16-data", "0ad-data", "hedgewars-data", "megaglest-data"]
    index = build_corpus(out, root, seed=0, allowed=allowed, cross_source=("megaglest-data",), workers=1, log=logs.append, excluded=keys)
    sources = {c.source for c in read_index(index)}
    assert not any("wolf-growl-0" in s or "wolf-hit-9" in s or "cattle_4" in s for s in sources)
    assert any("wolf-growl-1" in s for s in sources) and any("cattle_3" in s for s in sources)
    manifest = json.loads((out / "manifest.json").read_text())
    report = manifest["excluded_clips"]
    assert report["listed"] == 5  # the four lines and the built-in minetest-data twin of a held-out clip
    assert report["skipped"] == manifest["skipped"]["excluded_clips"] == 2
    assert report["skipped_by_package"] == {"0ad-data": 1, "wesnoth-1.16-data": 1}
    assert report["never_seen"] == [f"{WES}/no-such-file.ogg"]
    assert manifest["warnings"] == [f"excluded clip never seen in its (read) package: {WES}/no-such-file.ogg"]
    assert any(line.startswith("not-allowed-data/") and "not in the allowed list" in line for line in report["in_packages_not_read"])
    # copies of an excluded clip in any package go too: wesnoth's renamed one, megaglest's re-encoded one
    assert manifest["skipped"]["excluded_copies"] == 2
    assert sorted(line.split(" = ")[0].rsplit("/", 1)[1] for line in report["copies_skipped"]) == ["wolf-hit-9.wav", "wolf_copy.wav"]
    assert any("skipped 2 of 5 excluded clip(s)" in line for line in logs) and any("WARNING" in line for line in logs)


def test_read_excluded_errors(tmp_path):
    with pytest.raises(ClipsepError, match="excluded clips"):
        read_excluded(tmp_path / "missing.txt")
    bad = tmp_path / "bad.txt"
    bad.write_text("nexuiz-data usr/share/x.wav\n")  # a space, no tab
    with pytest.raises(ClipsepError, match=r"bad.txt:1: expected PACKAGE<TAB>PATH"):
        read_excluded(bad)
