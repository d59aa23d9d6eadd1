"""INT8 separator graph for CPUs: static quantisation of the U-Net, calibrated on real audio.

ONNX Runtime's `quantize_static` in QDQ format (QuantizeLinear / DequantizeLinear pairs around
each quantised op; ONNX Runtime's CPU provider fuses them into integer kernels) with
per-channel int8 weights and uint8 activations whose ranges come from calibration: each
activation's central 99.99% of values over the calibration windows (0.005% cut from each
end). On the default model
with 32 corpus training mixtures, those ranges gave INT8 masks 22.5 dB from FP32 on held-out
windows; the extremes (MinMax) gave 19.9 dB, an outlier stretching a range costs every value
in it resolution.

The first layer stays FP32 (the input norm and the first down conv, `FP32_FIRST_LAYER`: a
1-channel conv of 4.2 M multiply-adds in about 1 G). ONNX Runtime's x86 kernels multiply uint8
activations by int8 weights with VPMADDUBSW on CPUs without VNNI (AVX2 only), whose 16-bit
pair sums saturate (ONNX Runtime's quantisation docs say so); the normalised input spectrum
times the first conv's large weights saturates them. Measured on an AMD EPYC without
AVX-512 (2026-12-07), held-out windows of examples/dog_guitar: the bundled model's step 7,500
gave 9.0 dB with every U-Net node quantised and 27.7 dB with the first layer in FP32, step
14,500 2.9 and 26.1 dB (excluding the input norm alone: 2.9, the first conv alone: 9.8).

Otherwise only the U-Net's nodes are quantised (Conv, Resize, Concat, the activations). The query heads
stay FP32: they are a few small matrix products on the query embedding (no time to gain),
and the CLIPSep heads fuse the query late (an inner product with the U-Net's features), so the
U-Net's activations, hence the calibration ranges, do not depend on the queries at all.
Calibration therefore needs only mixtures: real sounds, cut into the network's windows exactly
as offline separation does (the runtime front end, `BlockFrontEnd`).

Why ONNX Runtime and not torch.ao: the runtime already loads ONNX graphs through
`OnnxRuntimeEngine`, so the INT8 graph needs no new engine, and ONNX Runtime's x86 int8
kernels use VNNI / AMX when the CPU has them; torch.ao's x86 path would tie the int8 model
to a torch build and a second serialisation format.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from clipsep_rt.config import SpectralConfig
from clipsep_rt.dsp.block_spectral import BlockFrontEnd
from clipsep_rt.errors import ClipsepError
from clipsep_rt.io.files import atomic_output, file_sha256
from clipsep_rt.io.media import load_audio
from clipsep_rt.optional import import_optional
from clipsep_rt.runtime.engines.contract import EMBEDDINGS, INT8_METADATA_KEY, LOG_MAG, SEPARATOR_OUTPUTS

UNET_SCOPE = "/model/unet/"  # node-name prefix of the U-Net in the exported separator graph
FP32_FIRST_LAYER = (f"{UNET_SCOPE}input_norm/", f"{UNET_SCOPE}down_convs.0/")  # node-name prefixes kept FP32 (docstring)
CALIBRATION_HOP_FRAMES = 32  # windows start every 32 frames (0.5 s): more ranges from short clips
MIN_CALIBRATION_WINDOWS = 4
CALIBRATION_PERCENTILE = 99.99  # percent of each activation's values inside its range (see the module docstring)
INT8_MIN_MASK_SNR_DB = 20.0  # the export refuses a graph whose masks are further from FP32


@dataclass(frozen=True)
class CalibrationSet:
    """Network inputs cut from real audio: what calibrates and what checks the INT8 graph."""

    windows: np.ndarray  # (N, 1, F, T) float32 warped log magnitudes
    files: list[dict]  # [{"name", "sha256", "seconds"}] of the audio they came from

    def split(self) -> tuple[np.ndarray, np.ndarray]:
        """(calibration, check): every other window, so the check is not the calibration data."""
        if len(self.windows) < 2:
            return self.windows, self.windows
        return self.windows[0::2], self.windows[1::2]


@dataclass(frozen=True)
class Int8Report:
    """What the manifest records about the INT8 graph."""

    calibration: list[dict]  # the audio files, with their hashes
    calibration_windows: int
    check_windows: int
    mask_snr_db: float  # worst output's mask SNR against the FP32 graph on the check windows
    quantised_nodes: int
    method: str = ("onnxruntime quantize_static, QDQ, per-channel int8 weights, uint8 activations (ranges holding the "
                   "central 99.99% of calibration values); the first layer (input norm, first conv) in FP32")

    def to_json(self) -> dict:
        return {
            "method": self.method,
            "calibration": self.calibration,
            "calibration_windows": self.calibration_windows,
            "check_windows": self.check_windows,
            "mask_snr_db": round(self.mask_snr_db, 2),
            "quantised_nodes": self.quantised_nodes,
        }


def calibration_windows(
    paths: Sequence[str | Path], spectral: SpectralConfig = SpectralConfig(), hop_frames: int = CALIBRATION_HOP_FRAMES
) -> CalibrationSet:
    """Every file decoded to 16 kHz mono and cut into (1, 256, window_frames) network inputs.

    A file shorter than one window is zero-padded to one (offline separation pads the same
    way). ClipsepError names a file that cannot be decoded, or says when there are too few
    windows to calibrate from.
    """
    if not paths:
        raise ClipsepError("INT8 calibration needs audio files (real sounds, e.g. examples/dog_guitar/*.wav)")
    front_end = BlockFrontEnd(spectral)  # the runtime's own front end
    window = spectral.window_frames
    windows, files = [], []
    for path in paths:
        audio = load_audio(path, spectral.sample_rate)
        samples = audio.samples
        minimum = (window - 1) * spectral.hop_length
        if len(samples) < minimum:
            samples = np.pad(samples, (0, minimum - len(samples)))
        log_mag = front_end.warped_log_magnitude(np.abs(front_end.stft(samples)))  # (256, frames)
        frames = log_mag.shape[-1]
        for start in range(0, frames - window + 1, hop_frames):
            windows.append(log_mag[None, :, start : start + window])
        files.append({"name": Path(path).name, "sha256": file_sha256(Path(path)), "seconds": round(audio.duration_s, 2)})
    if len(windows) < MIN_CALIBRATION_WINDOWS:
        raise ClipsepError(
            f"INT8 calibration: {len(windows)} windows of {window} frames from {len(files)} file(s), "
            f"need at least {MIN_CALIBRATION_WINDOWS}; give more or longer audio"
        )
    return CalibrationSet(np.stack(windows).astype(np.float32), files)


def _query_embeddings(query_dim: int, count: int = 2, seed: int = 0) -> np.ndarray:
    """Unit vectors for the embeddings input: the heads they reach are not quantised (see top)."""
    vectors = np.random.default_rng(seed).standard_normal((count, query_dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def _calibration_reader(windows: np.ndarray, query_dim: int):
    """An onnxruntime CalibrationDataReader that feeds `windows` one at a time."""
    quantization = import_optional("onnxruntime.quantization", "onnxruntime")
    embeddings = _query_embeddings(query_dim)

    class WindowReader(quantization.CalibrationDataReader):
        def __init__(self) -> None:
            self._feeds: Iterator[dict] = ({LOG_MAG: window[None], EMBEDDINGS: embeddings} for window in windows)

        def get_next(self) -> dict | None:
            return next(self._feeds, None)

    return WindowReader()


def _graph_query_dim(model) -> int:
    for item in model.graph.input:
        if item.name == EMBEDDINGS:
            return int(item.type.tensor_type.shape.dim[1].dim_value)
    raise ClipsepError(f"not a separator graph (no input {EMBEDDINGS!r})")


def quantize_separator_int8(fp32_path: str | Path, int8_path: str | Path, calibration: CalibrationSet) -> Int8Report:
    """Write the INT8 graph of the FP32 separator graph and check its masks against FP32.

    fp32_path: the exported separator.onnx (same inputs and outputs as the INT8 graph:
    log_mag (B, 1, 256, T), embeddings (Q, D) -> query_logits, noise_logits).
    """
    onnx = import_optional("onnx", "onnx")
    quantization = import_optional("onnxruntime.quantization", "onnxruntime")
    from onnxruntime.quantization.shape_inference import quant_pre_process

    fp32_path, int8_path = Path(fp32_path), Path(int8_path)
    calibrate, check = calibration.split()
    with tempfile.TemporaryDirectory(prefix="clipsep-int8-") as scratch:
        prepared = Path(scratch) / "prepared.onnx"
        quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
        model = onnx.load(str(prepared))
        unet_nodes = [node.name for node in model.graph.node
                      if node.name.startswith(UNET_SCOPE) and not node.name.startswith(FP32_FIRST_LAYER)]
        if not unet_nodes:
            raise ClipsepError(f"{fp32_path}: no U-Net nodes ({UNET_SCOPE}*) to quantise; re-export it with this version")
        quantised_path = Path(scratch) / "quantised.onnx"
        with contextlib.redirect_stdout(io.StringIO()):  # the percentile calibrator prints its settings
            quantization.quantize_static(
                str(prepared),
                str(quantised_path),
                _calibration_reader(calibrate, _graph_query_dim(model)),
                quant_format=quantization.QuantFormat.QDQ,
                per_channel=True,
                activation_type=quantization.QuantType.QUInt8,
                weight_type=quantization.QuantType.QInt8,
                calibrate_method=quantization.CalibrationMethod.Percentile,
                nodes_to_quantize=unet_nodes,
                extra_options={"CalibTensorRangeSymmetric": False, "CalibPercentile": CALIBRATION_PERCENTILE,
                               # The input norm's scale is 1-D: its channels are axis 0, not the
                               # default 1 (which onnxruntime warns is out of range, then quantises
                               # the scale per tensor: the same thing for its one channel).
                               "QDQOpTypePerChannelSupportToAxis": {"BatchNormalization": 0}},
            )
        quantised = onnx.load(str(quantised_path))  # marked, so the runtime knows it without `onnx`
        entry = quantised.metadata_props.add()
        entry.key, entry.value = INT8_METADATA_KEY, Int8Report.method
        with atomic_output(int8_path, overwrite=True) as temporary:
            onnx.save(quantised, str(temporary))
    snr = compare_int8(fp32_path, int8_path, check, _graph_query_dim(model))
    return Int8Report(calibration.files, len(calibrate), len(check), snr, len(unet_nodes))


def compare_int8(fp32_path: str | Path, int8_path: str | Path, windows: np.ndarray, query_dim: int) -> float:
    """Worst mask SNR (dB) of the INT8 graph against the FP32 graph, over outputs, on `windows`."""
    ort = import_optional("onnxruntime", "onnxruntime")
    from clipsep_rt.export.separator_onnx import mask_snr_db

    reference = ort.InferenceSession(str(fp32_path), providers=["CPUExecutionProvider"])
    candidate = ort.InferenceSession(str(int8_path), providers=["CPUExecutionProvider"])
    feeds = {LOG_MAG: windows, EMBEDDINGS: _query_embeddings(query_dim, count=4, seed=1)}
    want = reference.run(list(SEPARATOR_OUTPUTS), feeds)
    got = candidate.run(list(SEPARATOR_OUTPUTS), feeds)
    return min(mask_snr_db(w, g) for w, g in zip(want, got) if w.size)


__all__ = [
    "INT8_MIN_MASK_SNR_DB",
    "CalibrationSet",
    "Int8Report",
    "calibration_windows",
    "compare_int8",
    "quantize_separator_int8",
]
