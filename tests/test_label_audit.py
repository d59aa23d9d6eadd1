"""Label audit contact sheets: one PNG per class, with a log-frequency axis that places tones right."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("matplotlib")

from clipsep_rt.errors import ClipsepError
from clipsep_rt.training.index import Clip, write_index
from clipsep_rt.training.label_audit import log_frequency_spectrogram, main, write_contact_sheets

SR = 16000


def test_log_frequency_axis_places_a_tone():
    t = np.arange(SR) / SR
    spec, centres = log_frequency_spectrogram(np.sin(2 * np.pi * 1000 * t).astype(np.float32))
    peak = centres[int(np.argmax(spec.mean(axis=1)))]
    assert 900 < peak < 1100
    assert np.all(np.diff(np.log(centres)) > 0)


def test_contact_sheets_one_png_per_class(tmp_path):
    clips = []
    for name, freq in (("cow", 200), ("violin", 800)):
        (tmp_path / "audio" / name).mkdir(parents=True)
        for i in range(3):
            path = tmp_path / "audio" / name / f"{i}.wav"
            t = np.arange(SR) / SR
            sf.write(path, 0.3 * np.sin(2 * np.pi * freq * (i + 1) * t), SR)
            clips.append(Clip(path, None, 0, f"{name}|a {name}", "train", f"pkg{i}/x/{name}{i}.ogg", 1.0))
    write_index(tmp_path / "index.csv", clips)
    written = write_contact_sheets(tmp_path / "index.csv", tmp_path / "sheets", per_class=2, log=lambda m: None)
    assert sorted(p.name for p in written) == ["cow.png", "violin.png"]
    for path in written:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main([str(tmp_path / "index.csv"), "--out", str(tmp_path / "cli")]) == 0
    assert (tmp_path / "cli" / "cow.png").is_file()
    with pytest.raises(ClipsepError):
        write_contact_sheets(tmp_path / "missing.csv", tmp_path / "x", log=lambda m: None)
