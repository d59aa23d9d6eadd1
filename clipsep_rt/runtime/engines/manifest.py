"""The engine directory's manifest: what each file is and what it was made from.

`clipsep-rt export CHECKPOINT -o DIR` writes DIR/manifest.json next to the files, so that
the folder alone is enough to run: the separator's config, the spectral config, the query
encoder (id, size, and its exported text encoder if any), the checkpoint's hash, and how
closely each exported graph matched its reference (`parity`). The file names are those of
runtime/engines/contract.py.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from clipsep_rt.config import ModelConfig, SpectralConfig
from clipsep_rt.errors import ClipsepError
from clipsep_rt.io.files import atomic_output
from clipsep_rt.query.encoders.exported import ExportedTextEncoder
from clipsep_rt.runtime.engines.contract import MANIFEST_NAME

FORMAT = "clipsep_rt-engines"
VERSION = 1


@dataclass
class SeparatorFiles:
    weights: str | None  # the checkpoint in the project's format, for the torch backend; None: give the checkpoint beside the folder
    onnx: str  # FP32 graph: log_mag (B, 1, 256, T), embeddings (Q, D) -> query/noise logits (log grid)
    onnx_fp16: str | None = None  # same graph in FP16 with FP32 inputs/outputs
    tensorrt_plan: str | None = None  # serialized FP16 TensorRT plan (built on, and for, one GPU)
    window_frames: int = 256
    onnx_int8: str | None = None  # INT8 graph for the CPU (export --int8)
    int8: dict | None = None  # how it was made: calibration audio (names, sha256), mask SNR vs FP32 (export/int8.py)

    def backend_files(self, directory: Path) -> dict[str, str]:
        """{"onnx", "onnx_fp16", "onnx_int8", "tensorrt_plan"} -> paths, as runtime.engines.choice expects."""
        named = {"onnx": self.onnx, "onnx_fp16": self.onnx_fp16, "onnx_int8": self.onnx_int8, "tensorrt_plan": self.tensorrt_plan}
        return {key: str(directory / name) for key, name in named.items() if name}


@dataclass
class TextEncoderFiles:
    # FP32 graph; None where the folder ships only the compact ones (export --no-fp32-text-encoder).
    # open_clip: tokens (N, context) int64; minilm: input_ids, attention_mask (N, L) -> unit embeddings (N, D)
    onnx: str | None
    onnx_fp16: str | None = None  # only when it holds up against the reference encoder (see `parity`)
    tokenizer: str = "ViT-B-32"  # open_clip: the tokenizer name; minilm: the tokenizer.json file in the folder
    context_length: int = 77  # open_clip: tokens per text; minilm: the most tokens per text (longer ones are cut)
    kind: str = "open_clip"  # "open_clip" (a CLIP text tower) or "minilm" (all-MiniLM-L6-v2)
    onnx_int8: str | None = None  # weight-only INT8 (export --text-encoder-int8), only when it holds up (see `parity`)

    def encoder(self, directory: Path, encoder_id: str) -> ExportedTextEncoder:
        """What builds this text encoder from the folder's files, without torch: the FP32 graph,
        else FP16, else INT8 (ExportedTextEncoder.onnx names it). `encoder_id`: the manifest's
        query encoder, the weights it was exported from."""
        return ExportedTextEncoder.in_folder(directory, asdict(self), encoder_id)


@dataclass
class Manifest:
    checkpoint: dict  # {"name": file name, "sha256": hex}
    model: ModelConfig
    spectral: SpectralConfig
    query_encoder: str | None  # encoder id the separator was trained with
    query_dim: int
    separator: SeparatorFiles
    text_encoder: TextEncoderFiles | None = None
    provenance: dict = field(default_factory=dict)
    # file -> how it matched its reference when exported: {"against": ..., "mask_snr_db" or
    # "min_cosine": ..., "kept": bool}; a graph not in the folder (it did not hold up, or the FP32
    # text encoder left out for its compact graphs) is listed with kept false
    parity: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        data = asdict(self)
        data["model"], data["spectral"] = self.model.to_dict(), self.spectral.to_dict()
        return {"format": FORMAT, "version": VERSION, **data}

    def files(self) -> list[str]:
        """Every file the manifest lists, relative to its directory."""
        separator = self.separator
        names = [separator.weights, separator.onnx, separator.onnx_fp16, separator.onnx_int8, separator.tensorrt_plan]
        if self.text_encoder:
            names += [self.text_encoder.onnx, self.text_encoder.onnx_fp16, self.text_encoder.onnx_int8]
            if self.text_encoder.kind == "minilm":
                names.append(self.text_encoder.tokenizer)
        return [name for name in names if name]

    def write(self, directory: Path) -> Path:
        path = directory / MANIFEST_NAME
        with atomic_output(path, overwrite=True) as temp:
            temp.write_text(json.dumps(self.to_json(), indent=2) + "\n")
        return path


def read_manifest(directory: str | Path) -> Manifest:
    """The manifest of an engine directory; ClipsepError naming the directory if it has none."""
    directory = Path(directory)
    path = directory / MANIFEST_NAME
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ClipsepError(f"engine directory {directory}: no {MANIFEST_NAME} (make one with `clipsep-rt export`)") from None
    except (OSError, json.JSONDecodeError) as error:
        raise ClipsepError(f"engine directory {directory}: unreadable {MANIFEST_NAME} ({error})") from None
    if data.get("format") != FORMAT or data.get("version", 0) > VERSION:
        raise ClipsepError(f"engine directory {directory}: {MANIFEST_NAME} is not a clipsep-rt engine manifest (version {VERSION})")
    text = data.get("text_encoder")
    manifest = Manifest(
        checkpoint=data["checkpoint"],
        model=ModelConfig.from_dict(data["model"]),
        spectral=SpectralConfig.from_dict(data["spectral"]),
        query_encoder=data.get("query_encoder"),
        query_dim=data["query_dim"],
        separator=SeparatorFiles(**data["separator"]),
        text_encoder=TextEncoderFiles(**text) if text else None,
        provenance=data.get("provenance", {}),
        parity=data.get("parity", {}),
    )
    for name in manifest.files():
        if not (directory / name).is_file():
            raise ClipsepError(f"engine directory {directory}: {name} listed in {MANIFEST_NAME} is missing")
    return manifest
