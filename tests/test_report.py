"""`clipsep-rt separate ... --report DIR`: the HTML page, its files, its metrics and its errors.

A tiny random-weight CLIPSep-NIT model and stored query vectors: no CLIP weights needed.
"""

from __future__ import annotations

import importlib.util
import math
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import write_wav

from clipsep_rt.cli import main

pytest.importorskip("matplotlib", reason="the report needs matplotlib: pip install 'clipsep-rt[report]'")

RATE = 16000
QUERIES = ["violin", "a violin playing a slow melody in a concert hall", "<script>alert('x')</script> & co", "car engine"]
SCRIPT_QUERY = QUERIES[2]


def _tiny_checkpoint(path: Path, noise_heads: int) -> Path:
    from clipsep_rt.config import ModelConfig
    from clipsep_rt.model import CLIPSepSeparator, checkpoint_from_model, save_checkpoint

    torch.manual_seed(0)
    model = CLIPSepSeparator(ModelConfig(ngf=2, query_dim=8, noise_heads=noise_heads))
    save_checkpoint(checkpoint_from_model(model, None), path)
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    """Two tiny models (NIT and plain), a 3 s mixture of a tone and noise, its sources, queries."""
    from clipsep_rt.query import save_query_embeddings

    folder = tmp_path_factory.mktemp("report")
    _tiny_checkpoint(folder / "nit.safetensors", noise_heads=2)
    _tiny_checkpoint(folder / "plain.safetensors", noise_heads=0)
    rng = np.random.default_rng(0)
    t = np.arange(3 * RATE) / RATE
    tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    noise = (0.05 * rng.standard_normal(len(t))).astype(np.float32)
    write_wav(folder / "mix.wav", tone + noise)
    write_wav(folder / "tone.wav", tone)
    write_wav(folder / "noise.wav", noise)
    write_wav(folder / "short.wav", tone[: RATE])
    write_wav(folder / "other.wav", noise)
    save_query_embeddings(folder / "queries.npz", QUERIES, rng.standard_normal((len(QUERIES), 8)).astype(np.float32))
    np.save(folder / "one.npy", rng.standard_normal(8).astype(np.float32))
    return folder


def run(files: Path, *args: str, model: str = "nit.safetensors") -> int:
    return main(["-c", str(files / model), "--precision", "fp32", "--quiet", *args])


@pytest.fixture(scope="module")
def full_report(files) -> Path:
    """Four queries (label, paraphrase, a <script> one, unrelated), ground truth and interference."""
    report = files / "full"
    assert run(files, str(files / "mix.wav"), "--query-embedding", str(files / "queries.npz"),
               "-o", str(files / "out"), "--report", str(report),
               "--reference", str(files / "tone.wav"), "--interference", str(files / "noise.wav")) == 0
    return report


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[tuple[str, str]] = []  # (tag, url)
        self.tags: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.links += [(tag, value) for name, value in attrs if name in ("src", "href") and value is not None]


def parse(report: Path) -> _Links:
    parser = _Links()
    parser.feed((report / "index.html").read_text(encoding="utf-8"))
    return parser


def robustness_rows(report: Path) -> list[str]:
    text = (report / "index.html").read_text(encoding="utf-8")
    table = re.search(r'<table class="robustness">(.*?)</table>', text, re.S)
    return [] if table is None else re.findall(r"<tr><td.*?</tr>", table.group(1))


def test_report_page_links_only_files_inside_the_folder(full_report):
    from urllib.parse import unquote

    links = parse(full_report).links
    assert links
    for _, url in links:
        assert "://" not in url and not url.startswith("/"), url
        target = (full_report / unquote(url)).resolve()
        assert target.is_file() and full_report.resolve() in target.parents, url
    text = (full_report / "index.html").read_text(encoding="utf-8")
    assert "<script" not in text.lower() and "http" not in text


def test_report_has_one_spectrogram_and_player_per_signal(full_report):
    parsed = parse(full_report)
    images = [url for tag, url in parsed.links if tag == "img"]
    sounds = [url for tag, url in parsed.links if tag == "audio"]
    # mixture, ground truth, interference, then per query its prediction and two noise heads
    expected = 3 + len(QUERIES) * 3
    assert len(images) == len(set(images)) == expected
    assert len(sounds) == len(set(sounds)) == expected
    assert all(url.endswith(".png") for url in images) and all(url.endswith(".wav") for url in sounds)
    assert parsed.tags.count("audio") == expected
    for url in images:
        assert (full_report / url).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    mixture = sf.info(full_report / "01-mix" / "mixture.wav")
    assert (mixture.samplerate, mixture.frames, mixture.channels) == (RATE, 3 * RATE, 1)


def test_report_escapes_user_text(full_report):
    text = (full_report / "index.html").read_text(encoding="utf-8")
    assert SCRIPT_QUERY not in text
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; co" in text


def test_robustness_table_has_one_row_per_query_with_sdri(full_report):
    rows = robustness_rows(full_report)
    assert len(rows) == len(QUERIES)
    text = (full_report / "index.html").read_text(encoding="utf-8")
    assert "Robustness to queries" in text and "<th>SDRi</th>" in text
    for row in rows:
        assert len(re.findall(r"[-+]\d+\.\d dB", row)) == 2, row  # energy vs mixture, SDRi
    assert len(re.findall(r"SDRi [-+]\d+\.\d dB", text)) == len(QUERIES)


def test_sdri_matches_the_metrics_of_the_written_prediction(full_report, files):
    """The page's SDRi is BSS Eval v4 of the prediction (16 kHz) against the reference."""
    from clipsep_rt.dsp.metrics import separation_metrics

    text = (full_report / "index.html").read_text(encoding="utf-8")
    shown = float(re.search(r"SDRi ([-+]\d+\.\d) dB", text).group(1))
    prediction, _ = sf.read(full_report / "01-mix" / "q1-violin.wav", dtype="float32")
    mixture, tone, noise = (sf.read(files / name, dtype="float32")[0] for name in ("mix.wav", "tone.wav", "noise.wav"))
    expected = separation_metrics(prediction, tone, noise, mixture).sdri
    assert abs(shown - expected) < 0.2  # 16-bit report audio vs the float output


def test_report_without_ground_truth_or_noise_heads(files, capsys):
    """A plain CLIPSep model and one query: mixture and prediction only, no SDRi, no robustness table."""
    report = files / "plain_report"
    assert run(files, str(files / "mix.wav"), "--query-embedding", str(files / "one.npy"), "-o", str(files / "out_plain"),
               "--report", str(report), model="plain.safetensors") == 0
    images = [url for tag, url in parse(report).links if tag == "img"]
    assert sorted(images) == ["01-mix/mixture.png", "01-mix/q1-one.png"]
    text = (report / "index.html").read_text(encoding="utf-8")
    assert "SDRi" not in text and robustness_rows(report) == []


def test_report_for_several_inputs(files):
    report = files / "two_inputs"
    assert run(files, str(files / "mix.wav"), str(files / "other.wav"), "--query-embedding", str(files / "one.npy"),
               "-o", str(files / "out_two"), "--report", str(report)) == 0
    images = {url for tag, url in parse(report).links if tag == "img"}
    assert {"01-mix/mixture.png", "02-other/mixture.png", "01-mix/q1-one.png", "02-other/q1-one-noise2.png"} <= images
    assert len(images) == 2 * 4


def test_existing_report_is_kept_unless_overwrite(files, capsys):
    report = files / "again"
    args = [str(files / "mix.wav"), "--query-embedding", str(files / "one.npy"), "--report", str(report)]
    assert run(files, *args, "-o", str(files / "out_again1")) == 0
    before = (report / "index.html").read_bytes()
    capsys.readouterr()
    assert run(files, *args, "-o", str(files / "out_again2")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already exists" in err[0] and "--overwrite" in err[0], err
    assert not (files / "out_again2").exists()  # refused before anything was separated
    assert run(files, *args, "-o", str(files / "out_again3"), "--overwrite") == 0
    assert (report / "index.html").read_bytes() == before  # same input, same model: same page
    assert not [p for p in report.rglob("*") if p.name.startswith(".")]  # no temporary files left


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--reference", "missing.wav"], "--reference missing.wav: no such file"),
        (["--reference", "short.wav"], "--reference short.wav: 1.000 s"),
        (["--interference", "short.wav"], "--interference short.wav"),
        (["--reference", "tone.wav", "-i", "other.wav"], "exactly one input, got 2"),
    ],
)
def test_bad_ground_truth_is_a_one_line_error(files, capsys, monkeypatch, extra, message):
    monkeypatch.chdir(files)
    assert run(files, "mix.wav", "--query-embedding", "one.npy", "-o", "out_bad", "--report", "bad_report", *extra) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("clipsep-rt: error:") and message in err[0], err
    assert not (files / "bad_report").exists() and not (files / "out_bad").exists()


def test_reference_needs_report(files, capsys):
    assert run(files, str(files / "mix.wav"), "--query-embedding", str(files / "one.npy"),
               "--reference", str(files / "tone.wav")) == 2
    assert "--reference and --interference go with --report DIR" in capsys.readouterr().err


def test_missing_matplotlib_names_the_extra(files, capsys, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "matplotlib" else real(name, *a))
    assert run(files, str(files / "mix.wav"), "--query-embedding", str(files / "one.npy"), "-o", str(files / "out_nompl"),
               "--report", str(files / "nompl")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "matplotlib" in err[0] and "clipsep-rt[report]" in err[0], err


def test_spectrogram_rows_are_the_model_log_frequency_grid():
    """A full-scale 1 kHz sine peaks at 0 dBFS on the row `log_bin_of_frequency(1000)` names."""
    from clipsep_rt.report.spectrogram import LogSpectrogram, frequency_label, log_bin_of_frequency

    assert log_bin_of_frequency(0) == pytest.approx(0) and log_bin_of_frequency(8000) == pytest.approx(255)
    t = np.arange(RATE) / RATE
    db = LogSpectrogram()(np.sin(2 * np.pi * 1000 * t).astype(np.float32))
    assert db.shape == (256, 1 + RATE // 256)
    profile = db[:, 10:-10].mean(axis=1)
    assert abs(int(np.argmax(profile)) - log_bin_of_frequency(1000)) <= 1
    assert profile.max() == pytest.approx(0.0, abs=1.0)
    assert [frequency_label(hz) for hz in (100, 500, 1000, 4000)] == ["100", "500", "1k", "4k"]


def test_report_renders_in_headless_chromium(full_report, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("no chromium on PATH (`make test` installs it with apt-get when run as root)")
    shot = tmp_path / "screenshot.png"
    command = [browser, "--headless", "--no-sandbox", "--disable-gpu", f"--screenshot={shot}", "--window-size=1200,1600",
               f"--user-data-dir={tmp_path / 'profile'}", (full_report / "index.html").resolve().as_uri()]
    result = subprocess.run(command, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0 and shot.is_file(), result.stderr[-2000:]
    from matplotlib.image import imread

    pixels = (imread(shot)[..., :3] * 255).astype(np.uint8)  # (1600, 1200, 3)
    assert pixels.shape[:2] == (1600, 1200)
    colours = np.unique(pixels.reshape(-1, 3), axis=0)
    assert len(colours) > 1000, f"{len(colours)} colours: a blank page?"
    assert not math.isclose(pixels.std(), 0.0)
