"""The original CLIPSep inference pipeline, as a standalone script: the baseline of
`benchmarks/whole_process.py`, which times this script as a whole process.

Written from the description in the CLIPSep paper (Dong et al., "CLIPSep: Learning
Text-queried Sound Separation with Noisy Unlabeled Videos", ICLR 2023) and the pipeline of
"The Sound of Pixels" (Zhao et al., ECCV 2018) that its released code follows; no code is
taken from either project (nor from clipsep_rt's runtime). Only the network itself is
clipsep_rt's `CLIPSepSeparator` (the same U-Net and query heads, loaded from the same
checkpoint file as the clipsep-rt side), so the two sides differ in inference mechanics only.

    python benchmarks/original_pipeline.py --checkpoint FULL.safetensors \\
        --query-embedding q.npy in.wav out.wav [--threads 2]

What follows the paper / the original pipeline:
  - 16 kHz audio; STFT with a 1024-point Hann window and hop 256 (`torch.stft`, centred);
  - the network sees 65,535-sample clips (256 STFT frames), the paper's training length;
  - the magnitude is warped to 256 log-frequency bins with `F.grid_sample` and then the log
    is taken; the U-Net maps it to feature channels, and the query vector's projection
    (inner product) gives one mask per query;
  - the sigmoid mask is warped back to the 513 linear bins with `F.grid_sample` and
    multiplies the mixture STFT (mixture phase), then the inverse STFT (`torch.istft`);
  - eager fp32 on the CPU under `torch.no_grad()`.

What is our choice (the paper describes no procedure for long files, nor these details):
  - a long file is cut into consecutive non-overlapping 65,535-sample segments (the last one
    zero-padded), separated one at a time (batch 1), concatenated and trimmed to the input;
  - `align_corners=True` in both warps (the behaviour of the PyTorch version the original
    code was written for, where it was the default) and 1e-10 added before the log;
  - the two warp grids are built once, not per segment;
  - only the query mask is computed (CLIPSep-NIT's noise heads are not used at test time);
  - the query vector is read from a .npy file (the same file the clipsep-rt side gets), so
    no CLIP model runs on either side;
  - 2 torch threads by default (`--threads`); mono input (a multichannel file is averaged);
    the output is a float32 wav.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torch.nn.functional as F

from clipsep_rt.model.checkpoint import load_checkpoint

SAMPLE_RATE = 16000
N_FFT = 1024
HOP = 256
SEGMENT = 65535  # samples per network input: 256 centred STFT frames
LOG_BINS = 256
EPS = 1e-10


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", type=Path, required=True, help="the separator (a clipsep-rt .safetensors)")
    p.add_argument("--query-embedding", type=Path, required=True, help="a .npy query vector, (D,) or (1, D)")
    p.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    p.add_argument("input", type=Path, help="a 16 kHz audio file")
    p.add_argument("output", type=Path, help="the separated sound, a .wav file")
    return p.parse_args()


def warp_grid(out_bins: int, frames: int, to_log: bool) -> torch.Tensor:
    """A (1, out_bins, frames, 2) grid_sample grid that resamples the frequency axis only.

    Normalised frequency y in [-1, 1] of each output row reads the input at
    (21 ** ((y + 1) / 2) - 11) / 10 for the linear -> log warp, and at the inverse,
    log(10 y + 11) / log(21) * 2 - 1, for the log -> linear warp back.
    """
    y = torch.linspace(-1.0, 1.0, out_bins, dtype=torch.float64)
    if to_log:
        source_y = (torch.pow(21.0, (y + 1) / 2) - 11) / 10
    else:
        source_y = torch.log(10 * y + 11) / math.log(21) * 2 - 1
    source_x = torch.linspace(-1.0, 1.0, frames, dtype=torch.float64)
    grid_y, grid_x = torch.meshgrid(source_y, source_x, indexing="ij")
    return torch.stack([grid_x, grid_y], dim=-1)[None].float()


def separate_segment(model, segment: torch.Tensor, query: torch.Tensor, window: torch.Tensor,
                     to_log: torch.Tensor, to_linear: torch.Tensor) -> torch.Tensor:
    """One (1, 65535) segment -> its (1, 65535) separated sound."""
    spec = torch.stft(segment, N_FFT, HOP, window=window, center=True, return_complex=True)  # (1, 513, 256)
    magnitude = spec.abs()[:, None]  # (1, 1, 513, 256)
    warped = F.grid_sample(magnitude, to_log, align_corners=True)  # (1, 1, 256, 256)
    logits = model(torch.log(warped + EPS), query, noise_heads=False).query  # (1, 1, 256, 256)
    mask = F.grid_sample(torch.sigmoid(logits), to_linear, align_corners=True)  # (1, 1, 513, 256)
    return torch.istft(spec * mask[:, 0], N_FFT, HOP, window=window, center=True, length=segment.shape[-1])


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    model = load_checkpoint(args.checkpoint).build("cpu")
    query = torch.from_numpy(np.load(args.query_embedding).astype(np.float32).reshape(1, -1))
    audio, rate = sf.read(args.input, dtype="float32", always_2d=True)
    if rate != SAMPLE_RATE:
        raise SystemExit(f"{args.input}: {rate} Hz; this pipeline reads {SAMPLE_RATE} Hz audio")
    mixture = torch.from_numpy(audio.mean(axis=1))
    segments = max(1, math.ceil(len(mixture) / SEGMENT))
    padded = F.pad(mixture, (0, segments * SEGMENT - len(mixture))).reshape(segments, 1, SEGMENT)
    window = torch.hann_window(N_FFT)
    frames = SEGMENT // HOP + 1
    to_log, to_linear = warp_grid(LOG_BINS, frames, True), warp_grid(N_FFT // 2 + 1, frames, False)
    with torch.no_grad():
        outputs = [separate_segment(model, segment, query, window, to_log, to_linear) for segment in padded]
    separated = torch.cat(outputs, dim=-1)[0, : len(mixture)]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    sf.write(args.output, separated.numpy(), SAMPLE_RATE, subtype="FLOAT")


if __name__ == "__main__":
    main()
