"""`clipsep-rt export [CHECKPOINT] -o DIR`: every engine file a runtime machine needs, checked.

DIR receives the separator's weights (project format, for the torch backend), its FP32 and
FP16 ONNX graphs, optionally a TensorRT FP16 plan, the text encoder as FP32 and FP16 ONNX
(the CLIP text tower for an open_clip encoder; MiniLM with its tokenizer.json for the
bundled default model), optionally as weight-only INT8 ONNX (export/text_encoder_int8.py),
and manifest.json. The FP32 text encoder may be left out for its compact graphs
(text_encoder_fp32=False): the bundled model ships only its INT8 MiniLM (24 MB, not 90).
Every graph is checked numerically against its reference before the manifest is written, by
scale-free figures that the manifest records (`parity`): the separator's masks in dB SNR,
the text embeddings' cosine. An FP16 or INT8 graph that does not hold up is left out (and
said so); an FP32 graph that does not match its reference fails the export. Without a
checkpoint, the bundled default model.

Exported into the folder that holds the checkpoint (a project-format .safetensors), the
manifest lists the checkpoint itself instead of writing a copy of it: that is how the bundled
default model's folder (`model/weights/`, `make default-engine`) is also its engine folder.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from clipsep_rt.errors import ClipsepError, OptionError
from clipsep_rt.io.files import atomic_output, file_sha256
from clipsep_rt.model.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from clipsep_rt.query.base import QueryEncoder
from clipsep_rt.query.embedder import QueryEncoderOptions
from clipsep_rt.runtime.engines.contract import (
    MANIFEST_NAME,
    MINILM_TOKENIZER,
    SEPARATOR_FP16_ONNX,
    SEPARATOR_INT8_ONNX,
    SEPARATOR_ONNX,
    SEPARATOR_PLAN,
    SEPARATOR_WEIGHTS,
    TEXT_ENCODER_FP16_ONNX,
    TEXT_ENCODER_INT8_ONNX,
    TEXT_ENCODER_ONNX,
    TIMING_CACHE,
)
from clipsep_rt.runtime.engines.manifest import Manifest, SeparatorFiles, TextEncoderFiles

if TYPE_CHECKING:
    from clipsep_rt.query.encoders.minilm import MiniLMEncoder

logger = logging.getLogger(__name__)

FP16_MIN_MASK_SNR_DB = 40.0
VERIFY_PROMPTS = ("a photo of orchestra", "a photo of people yelling", "a photo of a dog barking loudly in a park", "")
# MiniLM's plain prompts, one past its 256-token cut (so the check covers truncation too)
MINILM_VERIFY_TEXTS = ("violin", "people yelling", "a dog barking loudly in a park", "", "rain on a tin roof " * 80)


@dataclass(frozen=True)
class ExportOptions:
    fp16: bool = True  # also write FP16 graphs
    weights: bool = True  # write the weights in the project's format (False: the checkpoint, given beside the folder, serves them)
    text_encoder: bool = True  # export the text encoder (a CLIP text tower, or MiniLM)
    text_encoder_int8: bool = False  # also write its weight-only INT8 graph (export/text_encoder_int8.py)
    text_encoder_fp32: bool = True  # keep its FP32 graph (False: only the compact graphs that held up ship)
    tensorrt: bool = False  # build a TensorRT FP16 plan (needs TensorRT and an NVIDIA GPU)
    int8: bool = False  # also write the INT8 CPU graph, calibrated on `calibration` (export/int8.py)
    calibration: tuple[Path, ...] = ()  # real audio files for the INT8 calibration
    opset: int = 17
    encoder: QueryEncoderOptions = QueryEncoderOptions()  # where the CLIP weights come from
    overwrite: bool = False


def export_engines(checkpoint_path: str | Path | None, out_dir: str | Path, options: ExportOptions = ExportOptions(),
                   log: Callable[[str], None] | None = None) -> Manifest:
    """Write and verify the engine directory; returns its manifest. `checkpoint_path` None:
    the bundled default model. `log` gets one line per file written and checked (default:
    this module's `logging` info)."""
    log = log or logger.info
    if checkpoint_path is None:
        from clipsep_rt.model.weights import default_checkpoint

        checkpoint_path = default_checkpoint()
    checkpoint_path, out_dir = Path(checkpoint_path), Path(out_dir)
    if (out_dir / MANIFEST_NAME).exists() and not options.overwrite:
        raise OptionError("overwrite", f"is off and {out_dir} already holds exported engines")
    if options.text_encoder and not options.text_encoder_fp32 and not (options.fp16 or options.text_encoder_int8):
        raise OptionError("text_encoder_fp32", "leaves the text encoder without a graph: ask for a compact one "
                                               "(--text-encoder-int8, or FP16: no --no-fp16)")
    checkpoint = load_checkpoint(checkpoint_path)
    # What the text encoder needs (CLIP weights) is found before anything is written.
    text_source = _load_text_encoder(checkpoint.query_encoder, options, log) if options.text_encoder else None
    with _new_folder(out_dir):
        return _write_engines(checkpoint, checkpoint_path, out_dir, text_source, options, log)


@contextmanager
def _new_folder(folder: Path) -> Iterator[None]:
    """Makes `folder`; if it did not exist and the body fails, removes it again, so that a
    failed export leaves no folder without a manifest behind (an existing folder is kept:
    every file goes in atomically)."""
    existed = folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    try:
        yield
    except BaseException:
        if not existed:
            shutil.rmtree(folder, ignore_errors=True)
        raise


def _write_engines(checkpoint: Checkpoint, checkpoint_path: Path, out_dir: Path, text_source: _TextSource | None,
                   options: ExportOptions, log: Callable[[str], None]) -> Manifest:
    """Every file of the engine folder, checked, then its manifest."""
    from clipsep_rt.export.separator_onnx import check_onnx, compare_fp16, convert_separator_fp16, export_separator_onnx, verify_separator_onnx

    model = checkpoint.build("cpu")

    in_place = checkpoint_path.suffix == ".safetensors" and checkpoint_path.resolve().parent == out_dir.resolve()
    weights = checkpoint_path.name if in_place else SEPARATOR_WEIGHTS if options.weights else None
    if weights == SEPARATOR_WEIGHTS:
        save_checkpoint(checkpoint, out_dir / SEPARATOR_WEIGHTS, overwrite=True)
    with atomic_output(out_dir / SEPARATOR_ONNX, overwrite=True) as temp:
        export_separator_onnx(model, temp, opset=options.opset, window_frames=checkpoint.spectral_config.window_frames)
        check_onnx(temp)
        snr = min(verify_separator_onnx(model, temp).values())
    log(f"{SEPARATOR_ONNX}: masks {_db(snr)} SNR against torch (batch 1 and 7, 1 and 5 queries)")
    parity = {SEPARATOR_ONNX: {"against": "torch", "mask_snr_db": snr, "kept": True}}
    separator = SeparatorFiles(weights=weights, onnx=SEPARATOR_ONNX, window_frames=checkpoint.spectral_config.window_frames)

    if options.fp16:
        fp16_path = out_dir / SEPARATOR_FP16_ONNX
        with atomic_output(fp16_path, overwrite=True) as temp:
            convert_separator_fp16(out_dir / SEPARATOR_ONNX, temp)
            check_onnx(temp)
            snr = min(compare_fp16(out_dir / SEPARATOR_ONNX, temp).values())
        kept = snr >= FP16_MIN_MASK_SNR_DB
        parity[SEPARATOR_FP16_ONNX] = {"against": SEPARATOR_ONNX, "mask_snr_db": snr, "kept": kept}
        if kept:
            log(f"{SEPARATOR_FP16_ONNX}: masks {_db(snr)} SNR against FP32")
            separator.onnx_fp16 = SEPARATOR_FP16_ONNX
        else:
            fp16_path.unlink()
            log(f"{SEPARATOR_FP16_ONNX}: left out, its masks are only {_db(snr)} from FP32 (need {FP16_MIN_MASK_SNR_DB:g} dB)")

    if options.int8:
        _export_int8(out_dir, checkpoint.spectral_config, options.calibration, separator, log)

    if options.tensorrt:
        from clipsep_rt.runtime.engines.tensorrt_plan import TensorRTBuildConfig, ensure_engine

        config = TensorRTBuildConfig(timing_cache=out_dir / TIMING_CACHE)
        ensure_engine(out_dir / SEPARATOR_ONNX, out_dir / SEPARATOR_PLAN, config, log=log)
        log(f"{SEPARATOR_PLAN}: TensorRT FP16 plan built for this GPU")
        separator.tensorrt_plan = SEPARATOR_PLAN

    text = _export_text_encoder(text_source, out_dir, options, parity, log) if text_source else None
    manifest = Manifest(
        checkpoint={"name": checkpoint_path.name, "sha256": file_sha256(checkpoint_path)},
        model=checkpoint.model_config,
        spectral=checkpoint.spectral_config,
        query_encoder=checkpoint.query_encoder,
        query_dim=checkpoint.query_dim,
        separator=separator,
        text_encoder=text,
        provenance=checkpoint.provenance,
        parity=parity,
    )
    manifest.write(out_dir)
    return manifest


def _export_int8(out_dir: Path, spectral, calibration: tuple[Path, ...], separator: SeparatorFiles,
                 log: Callable[[str], None]) -> None:
    """The INT8 graph, calibrated on real audio and refused when its masks drift from FP32."""
    from clipsep_rt.export.int8 import INT8_MIN_MASK_SNR_DB, calibration_windows, quantize_separator_int8

    windows = calibration_windows(calibration, spectral)
    with atomic_output(out_dir / SEPARATOR_INT8_ONNX, overwrite=True) as temp:
        report = quantize_separator_int8(out_dir / SEPARATOR_ONNX, temp, windows)
        if report.mask_snr_db < INT8_MIN_MASK_SNR_DB:
            raise ClipsepError(f"INT8 separator masks are only {report.mask_snr_db:.1f} dB from FP32 "
                               f"(need {INT8_MIN_MASK_SNR_DB:g}); calibrate on more varied audio")
    log(f"{SEPARATOR_INT8_ONNX}: masks {report.mask_snr_db:.1f} dB SNR against FP32 on {report.check_windows} held-out "
        f"windows (calibrated on {report.calibration_windows} windows of {len(report.calibration)} file(s))")
    separator.onnx_int8 = SEPARATOR_INT8_ONNX
    separator.int8 = report.to_json()


def _db(snr: float) -> str:
    return f"{snr:.1f} dB" if snr != float("inf") else "exact (inf dB)"


@dataclass(frozen=True)
class _TextSource:
    """The loaded text encoder to export: an open_clip CLIP model (`spec` names it) or MiniLM."""

    kind: str  # "open_clip" or "minilm"
    spec: str
    encoder: QueryEncoder


def _load_text_encoder(encoder_id: str | None, options: ExportOptions, log: Callable[[str], None]) -> _TextSource | None:
    """The checkpoint's text encoder, loaded; None (said so) when it is neither open_clip nor
    MiniLM. An encoder that cannot load (CLIP weights not there) is an OptionError naming
    `text_encoder`, the option that exports without it."""
    from clipsep_rt.query.encoders.registry import build_encoder, parse_encoder_spec

    spec = options.encoder.spec or encoder_id
    backend = parse_encoder_spec(spec, options.encoder.clip_weights).backend if spec else None
    if backend not in ("open_clip", "minilm"):
        log(f"text encoder: not exported ({spec or 'no encoder recorded'} is neither an open_clip CLIP model nor MiniLM)")
        return None
    try:
        encoder = build_encoder(spec, "cpu", options.encoder.clip_weights, allow_download=options.encoder.allow_download)
    except ClipsepError as error:
        raise OptionError("text_encoder", f"use it to export without the text encoder, which cannot be exported here: "
                                          f"{error}") from None
    return _TextSource(backend, spec, encoder)


def _export_text_encoder(source: _TextSource, out_dir: Path, options: ExportOptions, parity: dict,
                         log: Callable[[str], None]) -> TextEncoderFiles:
    """The checkpoint's text encoder as ONNX (its parity figures added to `parity`)."""
    from clipsep_rt.export.text_encoder_onnx import (
        export_text_encoder_onnx,
        verify_text_encoder_onnx,
    )
    from clipsep_rt.query.encoders.registry import parse_encoder_spec

    if source.kind == "minilm":
        return _export_minilm(source.encoder, out_dir, options, parity, log)
    spec, encoder = source.spec, source.encoder
    model, tokenizer = encoder.model.float(), encoder.tokenizer
    with atomic_output(out_dir / TEXT_ENCODER_ONNX, overwrite=True) as temp:
        export_text_encoder_onnx(model, temp, opset=options.opset)
        cosine = verify_text_encoder_onnx(model, tokenizer, temp, list(VERIFY_PROMPTS))
    log(f"{TEXT_ENCODER_ONNX}: cosine {cosine:.6f} with open_clip")
    parity[TEXT_ENCODER_ONNX] = {"against": "open_clip", "min_cosine": cosine, "kept": True}
    files = TextEncoderFiles(onnx=TEXT_ENCODER_ONNX, tokenizer=parse_encoder_spec(spec).model_name,
                             context_length=int(model.context_length))
    _export_compact_text(out_dir, files, parity, "open_clip",
                         lambda path: verify_text_encoder_onnx(model, tokenizer, path, list(VERIFY_PROMPTS), min_cosine=-1.0),
                         options, log)
    return files


def _export_minilm(encoder: MiniLMEncoder, out_dir: Path, options: ExportOptions, parity: dict,
                   log: Callable[[str], None]) -> TextEncoderFiles:
    """The bundled MiniLM encoder as ONNX with its tokenizer.json, checked against sentence-transformers."""
    from clipsep_rt.export.minilm_onnx import export_minilm_onnx, minilm_cosine, write_minilm_tokenizer
    from clipsep_rt.export.text_encoder_onnx import FP32_MIN_COSINE

    texts = list(MINILM_VERIFY_TEXTS)
    tokenizer = write_minilm_tokenizer(encoder, out_dir / MINILM_TOKENIZER)
    with atomic_output(out_dir / TEXT_ENCODER_ONNX, overwrite=True) as temp:
        export_minilm_onnx(encoder, temp, opset=options.opset)
        cosine = minilm_cosine(encoder, temp, tokenizer, texts)
        if not cosine >= FP32_MIN_COSINE:
            raise ClipsepError(f"{TEXT_ENCODER_ONNX}: MiniLM embeddings differ from sentence-transformers': "
                               f"cosine {cosine:.6f} < {FP32_MIN_COSINE}")
    log(f"{TEXT_ENCODER_ONNX}: MiniLM, cosine {cosine:.7f} with sentence-transformers (tokenizer {MINILM_TOKENIZER})")
    parity[TEXT_ENCODER_ONNX] = {"against": "sentence-transformers", "min_cosine": cosine, "kept": True}
    files = TextEncoderFiles(onnx=TEXT_ENCODER_ONNX, tokenizer=MINILM_TOKENIZER,
                             context_length=int(encoder.model.max_seq_length), kind="minilm")
    _export_compact_text(out_dir, files, parity, "sentence-transformers",
                         lambda path: minilm_cosine(encoder, path, tokenizer, texts), options, log)
    return files


def _export_compact_text(out_dir: Path, files: TextEncoderFiles, parity: dict, against: str,
                         cosine_of: Callable[[Path], float], options: ExportOptions, log: Callable[[str], None]) -> None:
    """The compact variants of the exported text encoder that `options` ask for (FP16, weight-only
    INT8), each kept (in `files`) only where its smallest cosine with the reference encoder
    (`against`) reaches its threshold; `parity` records them. Without options.text_encoder_fp32,
    the FP32 graph then leaves the folder: an OptionError when no compact graph held up."""
    from clipsep_rt.export.text_encoder_int8 import INT8_MIN_COSINE, quantize_text_encoder_int8
    from clipsep_rt.export.text_encoder_onnx import FP16_MIN_COSINE, convert_text_encoder_fp16

    variants = [("onnx_fp16", TEXT_ENCODER_FP16_ONNX, convert_text_encoder_fp16, FP16_MIN_COSINE)] if options.fp16 else []
    if options.text_encoder_int8:
        variants.append(("onnx_int8", TEXT_ENCODER_INT8_ONNX, quantize_text_encoder_int8, INT8_MIN_COSINE))
    for key, name, convert, min_cosine in variants:
        with atomic_output(out_dir / name, overwrite=True) as temp:
            convert(out_dir / TEXT_ENCODER_ONNX, temp)
            cosine = cosine_of(temp)
        kept = cosine >= min_cosine
        parity[name] = {"against": against, "min_cosine": cosine, "kept": kept}
        if kept:
            log(f"{name}: cosine {cosine:.7f} with {against} ({_megabytes(out_dir / name)})")
            setattr(files, key, name)
        else:
            (out_dir / name).unlink()
            log(f"{name}: left out, its cosine with {against} is only {cosine:.6f} (need {min_cosine})")
    if options.text_encoder_fp32:
        return
    compact = [name for name in (files.onnx_fp16, files.onnx_int8) if name]
    if not compact:
        tried = " or ".join(name for _, name, _, _ in variants)
        raise OptionError("text_encoder_fp32", f"would leave the folder without a text encoder: {tried} did not "
                                               f"hold up against {against}; keep the FP32 graph")
    (out_dir / TEXT_ENCODER_ONNX).unlink()
    files.onnx = None
    parity[TEXT_ENCODER_ONNX]["kept"] = False
    log(f"{TEXT_ENCODER_ONNX}: left out as asked; {compact[0]} serves text queries")


def _megabytes(path: Path) -> str:
    return f"{path.stat().st_size / 1e6:.1f} MB"
