"""Spectral and model hyper-parameters, one frozen dataclass each."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

# The query encoder of the paper and of its released checkpoints: OpenAI's CLIP ViT-B/32.
PAPER_QUERY_ENCODER = "open_clip:ViT-B-32/openai"


@dataclass(frozen=True)
class SpectralConfig:
    """The STFT front end and log-frequency warp of CLIPSep (paper defaults)."""

    sample_rate: int = 16000
    n_fft: int = 1024
    hop_length: int = 256
    win_length: int = 1024
    log_freq_bins: int = 256  # rows of the log-frequency grid the U-Net sees
    window_frames: int = 256  # STFT frames per network window (65,535 samples)

    @property
    def linear_freq_bins(self) -> int:
        return self.n_fft // 2 + 1

    @property
    def window_samples(self) -> int:
        """Most samples whose centred STFT has exactly `window_frames` frames (65,535)."""
        return self.window_frames * self.hop_length - 1

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "SpectralConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True)
class ModelConfig:
    """U-Net and query heads of CLIPSep (noise_heads=0) or CLIPSep-NIT (noise_heads=2)."""

    depth: int = 7  # stride-2 levels of the U-Net (>= 5)
    ngf: int = 64  # width of the first U-Net level
    channels: int = 32  # feature channels per time-frequency bin (the inner-product size)
    query_dim: int = 512  # query embedding size (512 for CLIP ViT-B/32)
    noise_heads: int = 2  # CLIPSep-NIT noise heads; 0 for plain CLIPSep
    # FiLM: the query also scales and shifts the U-Net's bottleneck and decoder levels (as
    # AudioSep and C-U-Net condition), so the decoder runs once per query; a training
    # experiment of model v3 (the runtime and export take late-fusion models only).
    film: bool = False

    def __post_init__(self) -> None:
        if self.depth < 5:
            raise ValueError(f"U-Net depth must be >= 5, got {self.depth}")
        for name in ("ngf", "channels", "query_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.noise_heads < 0:
            raise ValueError(f"noise_heads must be >= 0, got {self.noise_heads}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "ModelConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})
