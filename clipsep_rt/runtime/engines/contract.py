"""The names the exporter, the engines and the engine folder agree on, in one place.

Separator graph (ONNX file and TensorRT plan alike):
    inputs   LOG_MAG       float32 (B, 1, F, T)  warped log magnitude, B dynamic
             EMBEDDINGS    float32 (Q, D)        query embeddings, Q dynamic
    outputs  QUERY_LOGITS  (B, Q, F, T)          mask logits on the log-frequency grid
             NOISE_LOGITS  (B, Q, H, F, T)       noise-head logits (H = 0 for plain CLIPSep)

Engine folder (`clipsep-rt export CHECKPOINT -o DIR`): the file names below, listed in
MANIFEST_NAME (runtime/engines/manifest.py). A TensorRT plan's build record sits beside
it (`plan_metadata_path`) with the PLAN_* keys.
"""

from __future__ import annotations

from pathlib import Path

# -- separator graph tensors ----------------------------------------------------------------

LOG_MAG = "log_mag"
EMBEDDINGS = "embeddings"
QUERY_LOGITS = "query_logits"
NOISE_LOGITS = "noise_logits"
SEPARATOR_INPUTS = (LOG_MAG, EMBEDDINGS)
SEPARATOR_OUTPUTS = (QUERY_LOGITS, NOISE_LOGITS)
# Metadata keys of the converted separator graphs: what `clipsep-rt export` made of them.
FP16_METADATA_KEY = "clipsep_rt.fp16_keep_fp32"  # the FP16 graph: the ops it kept in fp32 (JSON list)
INT8_METADATA_KEY = "clipsep_rt.int8"  # the INT8 graph: how it was quantised

# The one optimization profile of TensorRT (native plans and ONNX Runtime's TensorRT
# provider): (min, opt, max) windows per call and queries per call, and the build workspace.
PROFILE_BATCH = (1, 8, 64)
PROFILE_QUERIES = (1, 4, 16)
WORKSPACE_BYTES = 4 << 30

# -- engine folder files ---------------------------------------------------------------------

MANIFEST_NAME = "manifest.json"
SEPARATOR_WEIGHTS = "separator.safetensors"  # the checkpoint in the project's format (torch backend)
SEPARATOR_ONNX = "separator.onnx"  # FP32 graph
SEPARATOR_FP16_ONNX = "separator.fp16.onnx"  # FP16 graph, FP32 inputs and outputs
SEPARATOR_INT8_ONNX = "separator.int8.onnx"  # INT8 (QDQ) U-Net, FP32 heads, inputs and outputs: CPU only
SEPARATOR_PLAN = "separator.plan"  # TensorRT FP16 plan, built on and for one GPU
TIMING_CACHE = "tensorrt.timing-cache"  # TensorRT's timing cache, reused across builds
TEXT_ENCODER_ONNX = "text_encoder.onnx"  # the text encoder (CLIP text tower or MiniLM), FP32
TEXT_ENCODER_FP16_ONNX = "text_encoder.fp16.onnx"
TEXT_ENCODER_INT8_ONNX = "text_encoder.int8.onnx"  # weight-only INT8 (8-bit weight blocks, FP32 activations): onnxruntime >= 1.23
MINILM_TOKENIZER = "text_encoder.tokenizer.json"  # the MiniLM text encoder's tokenizer (`tokenizers` format)

# -- ONNX Runtime execution providers --------------------------------------------------------

TRT_EP = "TensorrtExecutionProvider"
CUDA_EP = "CUDAExecutionProvider"
CPU_EP = "CPUExecutionProvider"
GPU_EPS = (TRT_EP, CUDA_EP)

# -- TensorRT plan metadata (the JSON record beside a plan) ------------------------------------

PLAN_FORMAT = "format"  # METADATA_FORMAT of the record
PLAN_TENSORRT_VERSION = "tensorrt_version"
PLAN_GPU_NAME = "gpu_name"
PLAN_COMPUTE_CAPABILITY = "compute_capability"  # [major, minor]
PLAN_MACHINE_KEYS = (PLAN_TENSORRT_VERSION, PLAN_GPU_NAME, PLAN_COMPUTE_CAPABILITY)  # what a plan is tied to
PLAN_FP16 = "fp16"
PLAN_CONFIG = "config"  # TensorRTBuildConfig.identity()
PLAN_WORKSPACE_BYTES = "workspace_bytes"
PLAN_PROFILE_SHAPES = "profile_shapes"  # {input name: [min, opt, max] shapes}
PLAN_ONNX_FILE = "onnx_file"
PLAN_ONNX_SHA256 = "onnx_sha256"
PLAN_CREATED = "created"
METADATA_FORMAT = 1


def plan_metadata_path(plan_path: str | Path) -> Path:
    """The build record of a plan: `separator.plan` -> `separator.json`."""
    return Path(plan_path).with_suffix(".json")
