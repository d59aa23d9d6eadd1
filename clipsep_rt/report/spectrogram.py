"""Log-frequency spectrogram pictures: what the network sees, as PNG files.

The frequency axis is the model's own log-frequency warp (the runtime's `BlockFrontEnd`, 256 bins from
DC to Nyquist at 16 kHz, STFT 1024/256): row i of a picture is row i of the U-Net input.
Magnitudes are shown in dB full scale: 20 log10 of the warped STFT magnitude, less that of a
full-scale sine (half the window's sum), so a sine of amplitude 1 peaks at 0 dB. The
offset is a constant: the picture is the network's input, scaled.

Matplotlib is optional (the `report` extra); it is drawn with the Agg canvas directly, so
the global pyplot backend is never touched.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from clipsep_rt.config import SpectralConfig
from clipsep_rt.dsp.block_spectral import BlockFrontEnd
from clipsep_rt.optional import import_optional

DB_PER_NEPER = 20.0 / math.log(10.0)  # natural log of a magnitude -> dB
DYNAMIC_RANGE_DB = 80.0  # colour scale: [loudest - 80 dB, loudest]
TICK_FREQUENCIES_HZ = (100, 500, 1000, 2000, 4000, 8000)
FIGURE_INCHES = (6.4, 2.7)
DPI = 100
COLOUR_MAP = "magma"


class LogSpectrogram:
    """(n,) float32 audio at the model rate -> (256, frames) dBFS on the model's log-frequency grid."""

    def __init__(self, config: SpectralConfig = SpectralConfig()):
        self.config = config
        self.front_end = BlockFrontEnd(config)
        self.full_scale_db = 20.0 * math.log10(float(self.front_end.window.sum()) / 2.0)

    def __call__(self, samples: np.ndarray) -> np.ndarray:
        wav = np.ascontiguousarray(samples, dtype=np.float32)
        magnitude = np.abs(self.front_end.stft(wav))  # (513, frames)
        return self.front_end.warped_log_magnitude(magnitude) * DB_PER_NEPER - self.full_scale_db  # (256, frames)

    def duration_s(self, frames: int) -> float:
        return frames * self.config.hop_length / self.config.sample_rate


def log_bin_of_frequency(hz: float, config: SpectralConfig = SpectralConfig()) -> float:
    """The (fractional) log-grid row that samples `hz`: the inverse of the warp's row -> frequency map.

    Row i samples normalised frequency y = (21 ** ((v + 1) / 2) - 11) / 10 with
    v = linspace(-1, 1, bins)[i] (see `warp.log_warp_matrix`), y = -1 at DC, 1 at Nyquist.
    """
    nyquist = config.sample_rate / 2
    y = 2.0 * hz / nyquist - 1.0
    fraction = math.log(10.0 * y + 11.0) / math.log(21.0)  # (v + 1) / 2
    return fraction * (config.log_freq_bins - 1)


def frequency_label(hz: float) -> str:
    return f"{hz / 1000:g}k" if hz >= 1000 else f"{hz:g}"


def colour_range(images: list[np.ndarray]) -> tuple[float, float]:
    """(vmin, vmax) dB shared by the pictures of one input: the loudest bin and 80 dB below."""
    loudest = max(float(np.max(image)) for image in images)
    vmax = math.ceil(loudest / 10.0) * 10.0
    return vmax - DYNAMIC_RANGE_DB, vmax


def render_png(
    db: np.ndarray, path: Path, vmin: float, vmax: float, title: str, config: SpectralConfig = SpectralConfig()
) -> None:
    """Write a (256, frames) dB picture to `path` as PNG: time in s, log frequency in Hz, a dB colour bar."""
    import_optional("matplotlib", "report")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    bins, frames = db.shape
    duration = frames * config.hop_length / config.sample_rate
    figure = Figure(figsize=FIGURE_INCHES, dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    image = axes.imshow(
        db, origin="lower", aspect="auto", cmap=COLOUR_MAP, vmin=vmin, vmax=vmax,
        extent=(0.0, duration, -0.5, bins - 0.5), interpolation="antialiased",
    )
    ticks = [hz for hz in TICK_FREQUENCIES_HZ if hz <= config.sample_rate / 2]
    axes.set_yticks([log_bin_of_frequency(hz, config) for hz in ticks], [frequency_label(hz) for hz in ticks])
    axes.set_xlabel("time (s)")
    axes.set_ylabel("frequency (Hz)")
    axes.set_title(title, fontsize=10)
    figure.colorbar(image, ax=axes, label="dBFS", pad=0.01)
    figure.savefig(path, format="png")
