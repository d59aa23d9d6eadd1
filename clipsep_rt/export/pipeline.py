"""`clipsep-rt export CHECKPOINT -o DIR`: every engine file a runtime machine needs, checked.

DIR receives the separator's weights (project format, for the torch backend), its FP32 and
FP16 ONNX graphs, optionally a TensorRT FP16 plan, the CLIP text tower as FP32 and FP16
ONNX (when the separator was trained with an open_clip encoder), and manifest.json. Every
graph is checked numerically against torch before the manifest is written.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from clipsep_rt.errors import ClipsepError, OptionError
from clipsep_rt.io.files import atomic_output, file_sha256
from clipsep_rt.model.checkpoint import load_checkpoint, save_checkpoint
from clipsep_rt.query.embedder import QueryEncoderOptions
from clipsep_rt.runtime.engines.contract import (
    MANIFEST_NAME,
    SEPARATOR_FP16_ONNX,
    SEPARATOR_ONNX,
    SEPARATOR_PLAN,
    SEPARATOR_WEIGHTS,
    TEXT_ENCODER_FP16_ONNX,
    TEXT_ENCODER_ONNX,
    TIMING_CACHE,
)
from clipsep_rt.runtime.engines.manifest import Manifest, SeparatorFiles, TextEncoderFiles

logger = logging.getLogger(__name__)

FP16_MIN_MASK_SNR_DB = 40.0
VERIFY_PROMPTS = ("a photo of orchestra", "a photo of people yelling", "a photo of a dog barking loudly in a park", "")


@dataclass(frozen=True)
class ExportOptions:
    fp16: bool = True  # also write FP16 graphs
    text_encoder: bool = True  # export the CLIP text tower when the separator uses open_clip
    tensorrt: bool = False  # build a TensorRT FP16 plan (needs TensorRT and an NVIDIA GPU)
    opset: int = 17
    encoder: QueryEncoderOptions = QueryEncoderOptions()  # where the CLIP weights come from
    overwrite: bool = False


def export_engines(checkpoint_path: str | Path, out_dir: str | Path, options: ExportOptions = ExportOptions(),
                   log: Callable[[str], None] | None = None) -> Manifest:
    """Write and verify the engine directory; returns its manifest. `log` gets one line per
    file written and checked (default: this module's `logging` info)."""
    log = log or logger.info
    from clipsep_rt.export.separator_onnx import check_onnx, compare_fp16, convert_separator_fp16, export_separator_onnx, verify_separator_onnx

    checkpoint_path, out_dir = Path(checkpoint_path), Path(out_dir)
    if (out_dir / MANIFEST_NAME).exists() and not options.overwrite:
        raise OptionError("overwrite", f"is off and {out_dir} already holds exported engines")
    checkpoint = load_checkpoint(checkpoint_path)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = checkpoint.build("cpu")

    save_checkpoint(checkpoint, out_dir / SEPARATOR_WEIGHTS, overwrite=True)
    with atomic_output(out_dir / SEPARATOR_ONNX, overwrite=True) as temp:
        export_separator_onnx(model, temp, opset=options.opset, window_frames=checkpoint.spectral_config.window_frames)
        check_onnx(temp)
        errors = verify_separator_onnx(model, temp)
    log(f"{SEPARATOR_ONNX}: matches torch within {max(errors.values()):.2g} (batch 1 and 7, 1 and 5 queries)")
    separator = SeparatorFiles(weights=SEPARATOR_WEIGHTS, onnx=SEPARATOR_ONNX, window_frames=checkpoint.spectral_config.window_frames)

    if options.fp16:
        with atomic_output(out_dir / SEPARATOR_FP16_ONNX, overwrite=True) as temp:
            convert_separator_fp16(out_dir / SEPARATOR_ONNX, temp)
            check_onnx(temp)
            snr = min(compare_fp16(out_dir / SEPARATOR_ONNX, temp).values())
        if snr < FP16_MIN_MASK_SNR_DB:
            (out_dir / SEPARATOR_FP16_ONNX).unlink()
            raise ClipsepError(f"FP16 separator masks are only {snr:.1f} dB from FP32 (need {FP16_MIN_MASK_SNR_DB:g})")
        log(f"{SEPARATOR_FP16_ONNX}: masks {snr:.1f} dB SNR against FP32")
        separator.onnx_fp16 = SEPARATOR_FP16_ONNX

    if options.tensorrt:
        from clipsep_rt.runtime.engines.tensorrt_plan import TensorRTBuildConfig, ensure_engine

        config = TensorRTBuildConfig(timing_cache=out_dir / TIMING_CACHE)
        ensure_engine(out_dir / SEPARATOR_ONNX, out_dir / SEPARATOR_PLAN, config, log=log)
        log(f"{SEPARATOR_PLAN}: TensorRT FP16 plan built for this GPU")
        separator.tensorrt_plan = SEPARATOR_PLAN

    text = _export_text_encoder(checkpoint.query_encoder, out_dir, options, log) if options.text_encoder else None
    manifest = Manifest(
        checkpoint={"name": checkpoint_path.name, "sha256": file_sha256(checkpoint_path)},
        model=checkpoint.model_config,
        spectral=checkpoint.spectral_config,
        query_encoder=checkpoint.query_encoder,
        query_dim=checkpoint.query_dim,
        separator=separator,
        text_encoder=text,
        provenance=checkpoint.provenance,
    )
    manifest.write(out_dir)
    return manifest


def _export_text_encoder(encoder_id: str | None, out_dir: Path, options: ExportOptions,
                         log: Callable[[str], None]) -> TextEncoderFiles | None:
    """The checkpoint's CLIP text tower as ONNX, or None when its encoder is not open_clip."""
    from clipsep_rt.query.encoders.registry import build_encoder, parse_encoder_spec
    from clipsep_rt.export.text_encoder_onnx import (
        FP16_MIN_COSINE,
        convert_text_encoder_fp16,
        export_text_encoder_onnx,
        verify_text_encoder_onnx,
    )

    spec = options.encoder.spec or encoder_id
    if spec is None or parse_encoder_spec(spec, options.encoder.clip_weights).backend != "open_clip":
        log(f"text encoder: not exported ({spec or 'no encoder recorded'} is not an open_clip CLIP model)")
        return None
    try:
        encoder = build_encoder(spec, "cpu", options.encoder.clip_weights, allow_download=options.encoder.allow_download)
    except ClipsepError as error:
        raise ClipsepError(f"{error} (or export without the text encoder: text_encoder=False)") from None
    model, tokenizer = encoder.model.float(), encoder.tokenizer
    with atomic_output(out_dir / TEXT_ENCODER_ONNX, overwrite=True) as temp:
        export_text_encoder_onnx(model, temp, opset=options.opset)
        cosine = verify_text_encoder_onnx(model, tokenizer, temp, list(VERIFY_PROMPTS))
    log(f"{TEXT_ENCODER_ONNX}: cosine {cosine:.6f} with open_clip")
    files = TextEncoderFiles(onnx=TEXT_ENCODER_ONNX, tokenizer=parse_encoder_spec(spec).model_name,
                             context_length=int(model.context_length))
    if options.fp16:
        with atomic_output(out_dir / TEXT_ENCODER_FP16_ONNX, overwrite=True) as temp:
            convert_text_encoder_fp16(out_dir / TEXT_ENCODER_ONNX, temp)
            cosine = verify_text_encoder_onnx(model, tokenizer, temp, list(VERIFY_PROMPTS), min_cosine=FP16_MIN_COSINE)
        log(f"{TEXT_ENCODER_FP16_ONNX}: cosine {cosine:.6f} with open_clip")
        files.onnx_fp16 = TEXT_ENCODER_FP16_ONNX
    return files
