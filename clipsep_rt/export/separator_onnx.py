"""The separator network (U-Net + query heads) as an ONNX graph, in FP32 and FP16.

What the graph computes (tensor names: clipsep_rt.runtime.engines.contract)
    inputs   log_mag     float32 (batch, 1, 256, frames)  warped log magnitude (the U-Net input)
             embeddings  float32 (queries, D)              query embeddings (D = config.query_dim)
    outputs  query_logits  float32 (batch, queries, 256, frames)
             noise_logits  float32 (batch, queries, H, 256, frames), H = config.noise_heads

`batch` and `queries` are dynamic axes (named so in the graph). `frames` is fixed at
`window_frames` (256 by default, the network window) unless the graph is exported with
`dynamic_frames=True`; then it is a dynamic axis named "frames", and every value fed must be a
multiple of 2 ** config.depth (128 for the paper's 7-level U-Net): the U-Net halves the
resolution `depth` times and its skip concatenations need the sizes to line up again.
For plain CLIPSep (H = 0) `noise_logits` is still an output, of shape (batch, queries, 0, 256,
frames): ONNX allows zero-sized dimensions, and a fixed output list keeps callers simple.

What stays out of the graph
    The STFT, the log-frequency warp (one matmul), the sigmoid, the unwarp to linear
    frequency and the iSTFT stay in Python (see `clipsep_rt.dsp.block_spectral`). The graph ends at the
    logits on the LOG-frequency grid: it stays small (no (513 x 256) unwarp matrix, no FFT
    ops that engines support unevenly), and the same graph serves soft masks
    (sigmoid, then unwarp) and binary masks (threshold, then unwarp) alike. There is no
    GridSample in the graph: the original's grid_sample warps are precomputed matrices here.

BatchNorm
    `fold_batchnorm` folds every BatchNorm that directly follows a U-Net conv (the down-path
    norms of levels 1 .. depth-2, the up-path norms of levels 1 .. depth-1) into that conv
    with `torch.nn.utils.fusion.fuse_conv_bn_eval`. The input BatchNorm (`unet.input_norm`)
    acts on the 1-channel input *before* a zero-padded conv, so it cannot be folded into
    that conv exactly (the padded border would see the affine's shift, not zeros). It is
    kept as the per-channel affine that an eval-mode BatchNorm is, and exports as the
    graph's single BatchNormalization node (which also makes it easy to pin to FP32 by op
    type in `convert_separator_fp16`).

Upsampling
    The U-Net upsamples with bilinear interpolation, align_corners=True; it exports as
    Resize(mode="linear", coordinate_transformation_mode="align_corners"), and
    `verify_separator_onnx` checks the result numerically against torch. Resize and torch
    round their float32 sampling coordinates (i * (n_in - 1) / (n_out - 1)) differently, which
    leaves errors of a few 1e-5 in the logits at 256 frames, more on long dynamic-frames
    windows, and in proportion to the logits' size: an absolute bound would refuse valid wide
    or trained models. The check is therefore scale-free, the SNR of the masks (sigmoid of
    the logits) against torch's, which must reach FP32_MIN_MASK_SNR_DB. Measured with ONNX
    Runtime's CPU provider (worst case over batch 1 and 7 x 1 and 5 queries): 115 dB for the
    bundled model, 115-138 dB for He-initialised random models of ngf 4 to 32, 110 dB on a
    384-frame dynamic window; a graph whose head bias is off by 1e-3 (a broken export)
    gives 76 dB, one whose head scale is off by 0.1 % 75 dB.

Exporter
    The TorchScript exporter (`torch.onnx.export(..., dynamo=False)`), opset 17 by default.
    It emits deprecation warnings on recent torch, which are silenced here. After export, the
    no-op Casts and Identity nodes it leaves (from `Tensor.to(same dtype)`) are removed:
    besides tidying the graph, a Cast to float32 left inside would break the FP16 conversion.

FP16
    `convert_separator_fp16` converts with onnxconverter_common (float32 inputs and outputs
    kept; Casts inside). Resize's `scales` input must stay float32 by the ONNX spec, so the
    converter's FP16 copy of it is put back. Measured on the reference checkpoint (official
    layout, ngf=8) with ONNX Runtime's CPU provider, inputs as in `verify_separator_onnx`
    (log magnitudes randn * 3 - 2, embeddings randn), the FP16 masks are ~63 dB from FP32 with
    nothing pinned to FP32: see DEFAULT_KEEP_FP32 for the measurements behind that choice.
    The converter clamps weights below 1e-7 in magnitude to +-1e-7 (its warnings about that
    are silenced; they change nothing measurable).
"""

from __future__ import annotations

import copy
import json
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from clipsep_rt.config import SpectralConfig
from clipsep_rt.errors import ClipsepError, OptionError
from clipsep_rt.export.onnx_graph import remove_noop_nodes, restore_float_resize_params, set_shape
from clipsep_rt.io.files import atomic_output
from clipsep_rt.model.separator import CLIPSepSeparator
from clipsep_rt.optional import describe_exception, import_optional
from clipsep_rt.runtime.engines.contract import (
    CPU_EP,
    EMBEDDINGS,
    FP16_METADATA_KEY,
    LOG_MAG,
    NOISE_LOGITS,
    QUERY_LOGITS,
    SEPARATOR_INPUTS,
    SEPARATOR_OUTPUTS,
)

DEFAULT_OPSET = 17
FP32_MIN_MASK_SNR_DB = 90.0  # ONNX Runtime vs torch, FP32 graph (see the module docstring)
LOG_FREQ_BINS = SpectralConfig().log_freq_bins  # 256: rows of the log-frequency grid
WINDOW_FRAMES = SpectralConfig().window_frames  # 256: frames of one network window

# Ops pinned to FP32 in the FP16 graph (op types or node names): none, by measurement.
# SNR of sigmoid(FP16 logits) vs sigmoid(FP32 logits), reference checkpoint (official layout,
# ngf=8), worst case over batch 1 and 7 x 1 and 5 queries, inputs as in `separator_inputs`:
#   ONNX Runtime CPU, FP16 graph vs FP32 graph          query    noise
#     keep nothing (the default)                        63.3 dB  67.0 dB
#     keep "BatchNormalization" (the input norm)        63.0 dB  66.6 dB
#     keep "Einsum" (the final inner products)          63.3 dB  67.0 dB
#     keep "Resize"                                     63.3 dB  67.0 dB
#   ORT's CPU provider has no FP16 kernels for most of these ops (Conv, LeakyRelu, Einsum...):
#   it inserts Casts and computes them in FP32, so the rows above measure FP16 weights and
#   FP16 tensors between ops, not FP16 arithmetic. The same network run entirely in FP16 in
#   torch (every op rounds to FP16; the setting of a GPU engine), vs FP32:
#     everything FP16                                   62.6 dB  63.9 dB
#     input norm FP32                                   62.9 dB  64.3 dB
#     inner products (Einsum) FP32                      62.6 dB  63.9 dB
#     query/noise projections (Gemm, Sigmoid) FP32      62.9 dB  64.2 dB
#     all three FP32                                    64.4 dB  65.4 dB
# No candidate gains even 2 dB over a 40 dB requirement, so nothing is pinned: the U-Net
# features stay below ~17 and the logits below ~45 (far from FP16's 65504), and the input log
# magnitudes (log(1e-10) = -23 at worst) keep a relative error of 2**-11 in FP16.
DEFAULT_KEEP_FP32: tuple[str, ...] = ()


def _onnx():
    return import_optional("onnx", "onnx")


def _onnxruntime():
    return import_optional("onnxruntime", "onnxruntime")


# --------------------------------------------------------------------------- BatchNorm folding


def fold_batchnorm(model: CLIPSepSeparator) -> CLIPSepSeparator:
    """An eval-mode deep copy of `model` with every conv-following BatchNorm folded into its conv.

    The folded norms become nn.Identity; the input BatchNorm stays (see the module docstring).
    Folding an already folded model is a no-op. `model` itself is left untouched.
    """
    folded = copy.deepcopy(model).eval()
    unet = folded.unet
    pairs = [(unet.down_convs, k, unet.down_norms, k - 1) for k in range(1, unet.depth - 1)]
    pairs += [(unet.up_convs, k, unet.up_norms, k - 1) for k in range(1, unet.depth)]
    for convs, conv_index, norms, norm_index in pairs:
        norm = norms[norm_index]
        if isinstance(norm, nn.Identity):
            continue
        if not isinstance(norm, nn.BatchNorm2d):
            raise ClipsepError(f"fold_batchnorm: unexpected {type(norm).__name__} after a U-Net conv")
        convs[conv_index] = fuse_conv_bn_eval(convs[conv_index], norm)
        norms[norm_index] = nn.Identity()
    return folded


# --------------------------------------------------------------------------------- export


class SeparatorGraph(nn.Module):
    """What the ONNX graph computes: (log_mag, embeddings) -> (query_logits, noise_logits)."""

    def __init__(self, model: CLIPSepSeparator):
        super().__init__()
        self.model = model

    def forward(self, log_mag: torch.Tensor, embeddings: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.model(log_mag, embeddings, noise_heads=True)
        return logits.query, logits.noise


def export_separator_onnx(
    model: CLIPSepSeparator,
    path: str | os.PathLike,
    opset: int = DEFAULT_OPSET,
    window_frames: int = WINDOW_FRAMES,
    dynamic_frames: bool = False,
) -> Path:
    """Export the separator (BatchNorms folded) to an ONNX file at `path`; returns the path.

    The graph's inputs and outputs are described in the module docstring. `window_frames`
    is the fixed frame count (and the tracing size when `dynamic_frames`); it must be a
    multiple of 2 ** config.depth. The file is written atomically (replacing `path`) and
    passes `check_onnx`.
    """
    onnx = _onnx()
    path = Path(path)
    config = model.config
    multiple = 2**config.depth
    if opset < 17:
        raise OptionError("opset", f"ONNX opset {opset} is too old for the separator graph: use 17 or newer")
    if window_frames < multiple or window_frames % multiple:
        raise OptionError(
            "window_frames", f"must be a positive multiple of 2**depth = {multiple} for this U-Net, got {window_frames}"
        )
    wrapper = SeparatorGraph(fold_batchnorm(model).float().cpu()).eval()
    # Trace with batch and query counts of 2, so that no size-1 dimension gets specialised.
    example = (
        torch.randn(2, 1, LOG_FREQ_BINS, window_frames),
        torch.randn(2, config.query_dim),
    )
    batch_axes = {0: "batch"}
    out_axes = {0: "batch", 1: "queries"}
    noise_axes = dict(out_axes)
    if dynamic_frames:
        batch_axes[3] = "frames"
        out_axes[3] = "frames"
        noise_axes[4] = "frames"
    dynamic_axes = {
        LOG_MAG: batch_axes,
        EMBEDDINGS: {0: "queries"},
        QUERY_LOGITS: out_axes,
        NOISE_LOGITS: noise_axes,
    }
    with tempfile.TemporaryDirectory() as scratch:
        raw = Path(scratch) / "raw.onnx"
        with warnings.catch_warnings(), torch.no_grad():
            # The TorchScript exporter is deprecated in favour of the dynamo one and says so.
            warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
            warnings.filterwarnings("ignore", message=".*feature will be removed.*")
            try:
                torch.onnx.export(
                    wrapper,
                    example,
                    str(raw),
                    dynamo=False,
                    opset_version=opset,
                    input_names=list(SEPARATOR_INPUTS),
                    output_names=list(SEPARATOR_OUTPUTS),
                    dynamic_axes=dynamic_axes,
                    do_constant_folding=True,
                )
            except Exception as error:
                raise ClipsepError(f"{path}: ONNX export failed ({describe_exception(error)})") from error
        graph = onnx.load(str(raw))
    remove_noop_nodes(graph)
    # The exporter leaves generated names on dimensions it cannot trace (H = 0, and the
    # frequency axis of an all-zero noise output): state the interface's shapes outright.
    frames_dim = "frames" if dynamic_frames else window_frames
    shapes = {
        LOG_MAG: ["batch", 1, LOG_FREQ_BINS, frames_dim],
        EMBEDDINGS: ["queries", config.query_dim],
        QUERY_LOGITS: ["batch", "queries", LOG_FREQ_BINS, frames_dim],
        NOISE_LOGITS: ["batch", "queries", config.noise_heads, LOG_FREQ_BINS, frames_dim],
    }
    for info in list(graph.graph.input) + list(graph.graph.output):
        set_shape(info, shapes[info.name])
    graph.doc_string = "CLIPSep separator: warped log magnitude + query embeddings -> log-grid mask logits"
    metadata = {
        "clipsep_rt.model_config": json.dumps(config.to_dict()),
        "clipsep_rt.frames": "dynamic" if dynamic_frames else str(window_frames),
        "clipsep_rt.frames_multiple": str(multiple),
        "clipsep_rt.outputs": "logits on the log-frequency grid; sigmoid, unwarp and iSTFT are not in the graph",
    }
    for key, value in metadata.items():
        entry = graph.metadata_props.add()
        entry.key, entry.value = key, value
    with atomic_output(path, overwrite=True) as temporary:
        onnx.save(graph, str(temporary))
        check_onnx(temporary)
    return path


# ---------------------------------------------------------------------------------- checks


def check_onnx(path: str | os.PathLike) -> None:
    """The ONNX checker (full check) and strict shape inference; ClipsepError on failure."""
    onnx = _onnx()
    path = Path(path)
    if not path.is_file():
        raise ClipsepError(f"{path}: no such ONNX file")
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as error:
        raise ClipsepError(f"{path}: not a valid ONNX model ({describe_exception(error)})") from error
    with tempfile.TemporaryDirectory() as scratch:
        try:
            onnx.shape_inference.infer_shapes_path(str(path), str(Path(scratch) / "inferred.onnx"), strict_mode=True)
        except Exception as error:
            raise ClipsepError(f"{path}: ONNX shape inference fails ({describe_exception(error)})") from error


def _session(path: Path, providers):
    ort = _onnxruntime()
    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), options, providers=list(providers or [CPU_EP]))
    except Exception as error:
        raise ClipsepError(f"{path}: ONNX Runtime cannot load the model ({describe_exception(error)})") from error


def _run(session, path: Path, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    try:
        return session.run(list(SEPARATOR_OUTPUTS), feeds)
    except Exception as error:
        shapes = ", ".join(f"{name} {tuple(value.shape)}" for name, value in feeds.items())
        raise ClipsepError(f"{path}: ONNX Runtime failed on inputs {shapes} ({describe_exception(error)})") from error


def _graph_frames(path: Path, frames: int | None) -> int:
    if frames is not None:
        return frames
    onnx = _onnx()
    model = onnx.load(str(path), load_external_data=False)
    dim = model.graph.input[0].type.tensor_type.shape.dim[3]
    return dim.dim_value if dim.HasField("dim_value") else WINDOW_FRAMES


def separator_inputs(
    batch: int, queries: int, frames: int, query_dim: int, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Random graph inputs in a realistic range: log magnitudes randn * 3 - 2, embeddings randn."""
    log_mag = rng.standard_normal((batch, 1, LOG_FREQ_BINS, frames), dtype=np.float32) * 3 - 2
    embeddings = rng.standard_normal((queries, query_dim), dtype=np.float32)
    return {LOG_MAG: log_mag, EMBEDDINGS: embeddings}


def verify_separator_onnx(
    model: CLIPSepSeparator,
    path: str | os.PathLike,
    batch_sizes: tuple[int, ...] = (1, 7),
    query_counts: tuple[int, ...] = (1, 5),
    min_snr_db: float = FP32_MIN_MASK_SNR_DB,
    providers=None,
    *,
    frames: int | None = None,
    seed: int = 0,
) -> dict[str, float]:
    """ONNX Runtime vs the torch model (unfolded, FP32) on seeded random inputs.

    Runs every (batch size, query count) pair; returns the worst mask SNR in dB (`mask_snr_db`)
    of each output, {"query_logits": ..., "noise_logits": ...} (inf for an empty output), and
    raises ClipsepError when one is below `min_snr_db`. `frames` defaults to the graph's fixed
    frame count (256 for a dynamic one).
    """
    path = Path(path)
    session = _session(path, providers)
    frames = _graph_frames(path, frames)
    reference = copy.deepcopy(model).float().cpu().eval()
    rng = np.random.default_rng(seed)
    snrs = dict.fromkeys(SEPARATOR_OUTPUTS, float("inf"))
    for batch in batch_sizes:
        for queries in query_counts:
            feeds = separator_inputs(batch, queries, frames, model.config.query_dim, rng)
            outputs = dict(zip(SEPARATOR_OUTPUTS, _run(session, path, feeds)))
            with torch.no_grad():
                expected = reference(torch.from_numpy(feeds[LOG_MAG]), torch.from_numpy(feeds[EMBEDDINGS]))
            for name, want in zip(SEPARATOR_OUTPUTS, (expected.query.numpy(), expected.noise.numpy())):
                got = outputs[name]
                if got.shape != want.shape:
                    raise ClipsepError(
                        f"{path}: {name} has shape {got.shape}, expected {want.shape} "
                        f"(batch {batch}, {queries} queries)"
                    )
                if want.size:
                    snrs[name] = min(snrs[name], mask_snr_db(want, got))
    for name, snr in snrs.items():
        if not snr >= min_snr_db:
            raise ClipsepError(
                f"{path}: {name} masks are only {snr:.1f} dB SNR from torch's (need {min_snr_db:g} dB): "
                "the graph does not compute what the model does"
            )
    return snrs


# -------------------------------------------------------------------------------------- FP16


def convert_separator_fp16(
    src: str | os.PathLike, dst: str | os.PathLike, keep_fp32: tuple[str, ...] = DEFAULT_KEEP_FP32
) -> Path:
    """Convert an exported FP32 separator graph to FP16, keeping float32 inputs and outputs.

    `keep_fp32` names op types (e.g. "BatchNormalization") or node names that stay FP32
    (with Casts around them). Resize nodes run in FP16; their `scales` stay float32 as the
    spec requires. The result is written atomically to `dst` and passes `check_onnx`.
    """
    onnx = _onnx()
    import_optional("onnxconverter_common", "onnx")
    from onnxconverter_common import float16

    src, dst = Path(src), Path(dst)
    if not src.is_file():
        raise ClipsepError(f"{src}: no such ONNX file")
    model = onnx.load(str(src))
    remove_noop_nodes(model)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*will be truncated to.*")
            converted = float16.convert_float_to_float16(
                model,
                keep_io_types=True,
                op_block_list=list(keep_fp32),
                node_block_list=list(keep_fp32),
            )
    except Exception as error:
        raise ClipsepError(f"{src}: FP16 conversion failed ({describe_exception(error)})") from error
    restore_float_resize_params(converted)
    entry = converted.metadata_props.add()
    entry.key, entry.value = FP16_METADATA_KEY, json.dumps(list(keep_fp32))
    with atomic_output(dst, overwrite=True) as temporary:
        onnx.save(converted, str(temporary))
        check_onnx(temporary)
    return dst


def mask_snr_db(fp32_logits: np.ndarray, fp16_logits: np.ndarray) -> float:
    """SNR in dB of sigmoid(fp16_logits) against sigmoid(fp32_logits) (the masks), in float64."""
    reference = 0.5 + 0.5 * np.tanh(0.5 * np.asarray(fp32_logits, dtype=np.float64))  # sigmoid, no overflow
    estimate = 0.5 + 0.5 * np.tanh(0.5 * np.asarray(fp16_logits, dtype=np.float64))
    signal = float(np.sum(reference**2))
    noise = float(np.sum((reference - estimate) ** 2))
    if noise == 0.0:
        return float("inf")
    return 10.0 * float(np.log10(signal / noise))


def compare_fp16(
    fp32_path: str | os.PathLike,
    fp16_path: str | os.PathLike,
    batch_sizes: tuple[int, ...] = (1, 7),
    query_counts: tuple[int, ...] = (1, 5),
    providers=None,
    *,
    frames: int | None = None,
    seed: int = 0,
) -> dict[str, float]:
    """Worst mask SNR (dB) of the FP16 graph against the FP32 graph, per output, over all runs.

    An empty output (plain CLIPSep's noise_logits) reports inf.
    """
    fp32_path, fp16_path = Path(fp32_path), Path(fp16_path)
    reference, candidate = _session(fp32_path, providers), _session(fp16_path, providers)
    frames = _graph_frames(fp32_path, frames)
    query_dim = reference.get_inputs()[1].shape[1]
    rng = np.random.default_rng(seed)
    snrs = dict.fromkeys(SEPARATOR_OUTPUTS, float("inf"))
    for batch in batch_sizes:
        for queries in query_counts:
            feeds = separator_inputs(batch, queries, frames, query_dim, rng)
            want = _run(reference, fp32_path, feeds)
            got = _run(candidate, fp16_path, feeds)
            for name, w, g in zip(SEPARATOR_OUTPUTS, want, got):
                if w.size:
                    snrs[name] = min(snrs[name], mask_snr_db(w, g))
    return snrs
