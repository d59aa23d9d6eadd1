"""The CLIP text tower as an ONNX graph (FP32, and an FP16 variant), and its parity check.

The graph is `model.encode_text(tokens)` followed by L2 normalisation:

    tokens      int64   (N, context_length)   N dynamic ("texts"); open_clip's tokenizer output
    embeddings  float32 (N, D)                rows of unit L2 norm

The tokenizer stays in Python (see clipsep_rt.query.encoders.onnx_text.OnnxTextEncoder).

Exporter: the TorchScript exporter (`torch.onnx.export(..., dynamo=False)`) by default. It
exports open_clip's nn.MultiheadAttention with its causal `attn_mask` buffer as an explicit
additive mask (MatMul -> Add(mask) -> Softmax) at opset 17, with LayerNormalization as one
fused op, in well under a second. `dynamo=True` uses the torch.export-based exporter, which
torch calls the future (TorchScript export is deprecated since torch 2.9): same interface
and numerics, mask included, but opset 18 at least (torch 2.14 cannot down-convert its
graph to 17) and several seconds per export. CLIP pools at the EOT token, the largest token
id, so the mask is what keeps tokens after EOT from reaching the pooled features; the tests
check that for both exporters and the FP16 graph.

FP16 (`convert_text_encoder_fp16`, onnxconverter_common with keep_io_types): weights and
most arithmetic in float16; the graph's inputs and outputs keep their types (int64 in,
float32 out). Kept in float32 (FP16_OP_BLOCK_LIST plus nodes named by the code):
  * LayerNormalization: its variance is a mean of squares over the width; CLIP's text
    residual stream carries activations large enough that squares summed in float16 lose
    most of their bits or overflow (65504). Graphs exported below opset 17 decompose it; its
    reductions (ReduceMean, Pow, Sqrt) are then kept too. The decomposition's Sub and Div
    see float16 inputs anyway and accumulate nothing, so they stay float16 (blocking Div by
    op type would also catch GELU's). Sqrt also catches the attention's scalar scale.
  * Softmax: exp and a row sum over up to 77 keys; in float16 the small probabilities lose
    their bits. The causal mask, -inf in the FP32 graph, is stored as -1e4 in float16 (the
    converter's clip) and added in float16; exp of such a score is exactly 0 in float32.
  * The final L2 normalisation: ReduceL2 and everything downstream of the tensor it reads
    (Clip, Expand, Div), blocked by node name since Div also occurs elsewhere: a sum of D
    squares, and F.normalize's eps of 1e-12 does not exist in float16.
  * Casts from integers to float32 (the attention scale, computed from a shape), and
    Constants read only by float32 nodes, so those keep their float32 values.
  * Optionally (`keep_attention_scores_fp32=True`) each attention-score MatMul (Q.K^T) and
    the mask Add between it and Softmax, for runtimes that accumulate float16 MatMuls in
    float16. Off by default: the FP16 target (cosine >= 0.999 with open_clip) is met without.
  * onnxconverter_common's own DEFAULT_OP_BLOCK_LIST (Range, Min, Max, ...).
Initializer and constant values are clipped as the converter does: magnitudes below 1e-7
become +-1e-7, above 1e4 become +-1e4.

ONNX Runtime: load these graphs with `disabled_optimizers=ORT_DISABLED_OPTIMIZERS` (see there).
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import torch

from clipsep_rt.errors import ClipsepError, OptionError
from clipsep_rt.io.files import atomic_output
from clipsep_rt.optional import describe_exception, import_optional
from clipsep_rt.query.encoders.onnx_text import EMBEDDINGS, ORT_DISABLED_OPTIMIZERS, TOKENS
from clipsep_rt.runtime.engines.contract import CPU_EP

BATCH_AXIS = "texts"
DEFAULT_OPSET = 17
FP32_MIN_COSINE = 0.9999  # ONNX Runtime vs open_clip, FP32 graph
FP16_MIN_COSINE = 0.999  # ONNX Runtime vs open_clip, FP16 graph

# Op types computed in float32 inside the FP16 graph (see the module docstring for why).
FP16_OP_BLOCK_LIST = (
    "LayerNormalization",
    "ReduceMean",  # decomposed LayerNormalization (opset < 17): mean and variance
    "Pow",  # decomposed LayerNormalization: squares
    "Sqrt",  # decomposed LayerNormalization: standard deviation (also the scalar attention scale)
    "Softmax",
    "ReduceL2",  # final normalisation; the nodes after it are blocked by name
)


class _NormalisedTextTower(torch.nn.Module):
    """tokens (N, L) int64 -> encode_text, L2-normalised, float32 (N, D)."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        features = self.model.encode_text(tokens).float()
        return torch.nn.functional.normalize(features, dim=-1)


def export_text_encoder_onnx(
    model: torch.nn.Module,
    path: str | Path,
    context_length: int | None = None,
    opset: int = DEFAULT_OPSET,
    *,
    dynamo: bool = False,
) -> Path:
    """Write the text tower of open_clip `model` (float32 weights) to `path` as ONNX; returns the path.

    context_length defaults to the model's (77 for OpenAI CLIP); a different one is refused,
    since the positional embedding and the causal mask have that length. The file replaces
    any existing one (written atomically), and passes onnx.checker's full check.
    dynamo=True uses the torch.export-based exporter instead of the TorchScript one; it
    needs opset >= 18. Both give the same graph interface and numerics.
    """
    onnx = import_optional("onnx", "onnx")
    path = Path(path)
    model_length = _model_context_length(model)
    if context_length is None:
        if model_length is None:
            raise ClipsepError("the model does not say its context length: pass context_length")
        context_length = model_length
    elif model_length is not None and context_length != model_length:
        raise ClipsepError(f"context_length {context_length} differs from the model's {model_length}")
    if dynamo and opset < 18:
        raise OptionError("opset", f"the dynamo exporter writes opset 18 or later, not {opset}")
    parameter = next(model.parameters(), None)
    if parameter is not None and parameter.dtype != torch.float32:
        raise ClipsepError(
            f"export the float32 model (its weights are {parameter.dtype}); "
            "convert_text_encoder_fp16 makes the FP16 graph from the FP32 one"
        )
    device = parameter.device if parameter is not None else torch.device("cpu")

    wrapper = _NormalisedTextTower(model)
    # Two rows (a batch of 1 would be specialised), ids valid in any vocabulary, the
    # largest (the stand-in EOT, where CLIP pools) at position 2.
    example = torch.zeros((2, context_length), dtype=torch.int64, device=device)
    example[:, 0], example[0, 1], example[:, 2] = 1, 2, 3
    was_training = model.training
    wrapper.eval()
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # The tracer's notes on shape checks in nn.MultiheadAttention: shapes are fixed here.
            warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
            # Pooling indexes with arange and argmax, never negative: the warning does not apply.
            warnings.filterwarnings("ignore", message=".*advanced indexing.*negative values")
            warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export")
            warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.onnx")
            embedding_dim = int(wrapper(example).shape[1])
            proto = (_dynamo_export if dynamo else _torchscript_export)(onnx, wrapper, example, opset)
    except ClipsepError:
        raise
    except Exception as exc:
        raise ClipsepError(f"could not export the CLIP text tower to ONNX: {describe_exception(exc)}") from exc
    finally:
        model.train(was_training)

    # The TorchScript exporter leaves D symbolic ("Divembeddings_dim_1"); it is fixed, and
    # readers (OnnxTextEncoder.embedding_dim) use it.
    output_shape = proto.graph.output[0].type.tensor_type.shape
    output_shape.dim[0].dim_param = BATCH_AXIS
    output_shape.dim[1].dim_value = embedding_dim
    onnx.helper.set_model_props(
        proto,
        {
            "clipsep_rt.graph": "clip_text_encoder",
            "clipsep_rt.context_length": str(context_length),
            "clipsep_rt.embedding_dim": str(embedding_dim),
            "clipsep_rt.precision": "fp32",
        },
    )
    _check_and_save(onnx, proto, path, "the exported text encoder")
    return path


def convert_text_encoder_fp16(
    src: str | Path,
    dst: str | Path,
    *,
    keep_attention_scores_fp32: bool = False,
) -> Path:
    """Write an FP16 copy of the FP32 text-encoder graph `src` to `dst`; returns `dst`.

    Inputs and outputs keep their types (int64 tokens, float32 embeddings). What stays
    float32 and why: see the module docstring and FP16_OP_BLOCK_LIST.
    """
    onnx = import_optional("onnx", "onnx")
    float16 = import_optional("onnxconverter_common", "onnx").float16
    src, dst = Path(src), Path(dst)
    proto = _load_onnx(onnx, src)
    if float16.check_if_fp16_ready(proto.graph):
        raise ClipsepError(f"{src}: already has float16 parts; convert the FP32 export")
    op_block_list = list(float16.DEFAULT_OP_BLOCK_LIST) + list(FP16_OP_BLOCK_LIST)
    node_block_list = _prepare_for_fp16(onnx, proto, op_block_list, keep_attention_scores_fp32)
    blocked = {n.name for n in proto.graph.node if n.op_type in op_block_list} | node_block_list
    try:
        with warnings.catch_warnings():
            # Per-value notes on clipping to float16's usable range (see the module docstring).
            warnings.filterwarnings("ignore", message="the float32 number .* will be truncated to")
            converted = float16.convert_float_to_float16(
                proto,
                keep_io_types=True,
                op_block_list=op_block_list,
                node_block_list=sorted(node_block_list),
            )
    except Exception as exc:
        raise ClipsepError(f"{src}: FP16 conversion failed: {describe_exception(exc)}") from exc
    _restore_float_outputs(onnx, converted)
    props = {p.key: p.value for p in converted.metadata_props}
    props["clipsep_rt.precision"] = "fp16"
    props["clipsep_rt.fp32_nodes"] = ",".join(sorted(blocked))
    del converted.metadata_props[:]
    onnx.helper.set_model_props(converted, props)
    _check_and_save(onnx, converted, dst, f"{src}: the FP16 graph")
    return dst


def verify_text_encoder_onnx(
    model: torch.nn.Module,
    tokenizer,
    path: str | Path,
    texts: list[str],
    min_cosine: float = FP32_MIN_COSINE,
) -> float:
    """Minimum cosine similarity, over `texts`, of ONNX Runtime (CPU) embeddings and open_clip's.

    open_clip's are `model.encode_text(tokenizer(texts))`, L2-normalised. Raises
    ClipsepError when the minimum is below `min_cosine` (or not finite).
    """
    texts = list(texts)
    if not texts:
        raise ValueError("verify_text_encoder_onnx needs at least one text")
    ort = import_optional("onnxruntime", "onnxruntime")
    path = Path(path)
    tokens = torch.as_tensor(tokenizer(texts), dtype=torch.int64)
    session = _cpu_session(ort, path)
    got = session.run([EMBEDDINGS], {TOKENS: tokens.cpu().numpy().astype(np.int64)})[0]
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            reference = model.encode_text(tokens.to(device)).float()
    finally:
        model.train(was_training)
    reference = torch.nn.functional.normalize(reference, dim=-1).cpu().numpy().astype(np.float64)
    got = np.asarray(got, dtype=np.float64)
    if got.shape != reference.shape:
        raise ClipsepError(f"{path}: ONNX embeddings have shape {got.shape}, open_clip's {reference.shape}")
    norms = np.linalg.norm(got, axis=1) * np.linalg.norm(reference, axis=1)
    cosines = np.sum(got * reference, axis=1) / np.maximum(norms, np.finfo(np.float64).tiny)
    cosines = np.where(np.isfinite(cosines), cosines, -np.inf)
    worst = int(np.argmin(cosines))
    minimum = float(cosines[worst])
    if not minimum >= min_cosine:
        raise ClipsepError(
            f"{path}: ONNX text embeddings differ from open_clip's: cosine {minimum:.6f} < {min_cosine} "
            f"for {texts[worst]!r}"
        )
    return minimum


def _torchscript_export(onnx, wrapper: torch.nn.Module, example: torch.Tensor, opset: int):
    buffer = io.BytesIO()
    torch.onnx.export(
        wrapper,
        (example,),
        buffer,
        input_names=[TOKENS],
        output_names=[EMBEDDINGS],
        dynamic_axes={TOKENS: {0: BATCH_AXIS}, EMBEDDINGS: {0: BATCH_AXIS}},
        opset_version=opset,
        do_constant_folding=True,
        dynamo=False,
    )
    return onnx.load_from_string(buffer.getvalue())


def _dynamo_export(onnx, wrapper: torch.nn.Module, example: torch.Tensor, opset: int):
    program = torch.onnx.export(
        wrapper,
        (example,),
        None,
        input_names=[TOKENS],
        output_names=[EMBEDDINGS],
        dynamic_shapes=({0: torch.export.Dim(BATCH_AXIS)},),
        opset_version=opset,
        dynamo=True,
        verbose=False,
    )
    return program.model_proto


def _model_context_length(model: torch.nn.Module) -> int | None:
    length = getattr(model, "context_length", None)
    if length is None and getattr(model, "attn_mask", None) is not None:
        length = model.attn_mask.shape[-1]
    return None if length is None else int(length)


def _check_and_save(onnx, proto, path: Path, what: str) -> None:
    """Run onnx.checker (full check) on `proto`, then write it atomically to `path`."""
    try:
        onnx.checker.check_model(proto, full_check=True)
    except Exception as exc:
        raise ClipsepError(f"{what} fails onnx.checker: {describe_exception(exc)}") from exc
    with atomic_output(path, overwrite=True) as temp:
        onnx.save_model(proto, str(temp))


def _load_onnx(onnx, path: Path):
    if not path.is_file():
        raise ClipsepError(f"{path}: ONNX file not found")
    try:
        return onnx.load(str(path))
    except Exception as exc:
        raise ClipsepError(f"{path}: not a readable ONNX file: {describe_exception(exc)}") from exc


def _cpu_session(ort, path: Path):
    if not path.is_file():
        raise ClipsepError(f"{path}: ONNX file not found")
    try:
        return ort.InferenceSession(
            str(path), providers=[CPU_EP], disabled_optimizers=list(ORT_DISABLED_OPTIMIZERS)
        )
    except Exception as exc:
        raise ClipsepError(f"{path}: ONNX Runtime cannot load it: {describe_exception(exc)}") from exc


def _consumers(graph) -> dict[str, list]:
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    return consumers


def _final_normalisation_nodes(graph) -> set[str]:
    """Names of the nodes of the output's L2 normalisation: each ReduceL2 and what follows it.

    That is every node downstream of the tensor the last ReduceL2 reads (ReduceL2, Clip,
    Expand, Div), not the projection that produced the tensor.
    """
    reductions = [node for node in graph.node if node.op_type == "ReduceL2"]
    if not reductions:
        raise ClipsepError("the text-encoder graph has no ReduceL2: not an export of export_text_encoder_onnx")
    consumers = _consumers(graph)
    blocked: set[str] = set()
    frontier = list(consumers.get(reductions[-1].input[0], []))
    while frontier:
        node = frontier.pop()
        if node.name in blocked:
            continue
        blocked.add(node.name)
        for output in node.output:
            frontier.extend(consumers.get(output, []))
    return blocked


def _prepare_for_fp16(onnx, proto, op_block_list: list[str], keep_attention_scores_fp32: bool) -> set[str]:
    """Ready the FP32 graph (in place) for onnxconverter_common; returns the nodes to keep in float32.

    The converter retypes every float tensor that no blocked node produces, converts every
    initializer and Constant that no blocked node reads, and leaves Cast nodes alone. The
    TorchScript export trips it three ways, handled here:
      * Cast nodes: identity casts (float32 to float32, encode_text's `.to(cast_dtype)`)
        are removed; casts from integers to float32 (the attention scale, from a shape) are
        blocked, so they stay float32 and the converter puts a Cast to float16 after them.
        (Retargeting them to float16 instead trips the converter's clean-up, which drops a
        Cast-to-float16 followed by a Cast-to-float32 even when the first reads an integer.)
      * shared initializers: the exporter merges equal tensors (all LayerNorm gains are
        ones in a fresh model) behind Identity nodes; the Identity nodes are removed, and
        an initializer read by both blocked and other nodes gets a float32 copy for the
        blocked ones.
      * Constant nodes read only by blocked nodes are blocked too, so they keep their
        float32 values (the converter would clip F.normalize's eps of 1e-12 to 1e-7).
    """
    graph = proto.graph
    for index, node in enumerate(graph.node):
        if not node.name:
            node.name = f"{node.op_type}_unnamed_{index}"
    inferred = onnx.shape_inference.infer_shapes(proto, strict_mode=True).graph
    types = {info.name: info.type.tensor_type.elem_type for info in (*inferred.value_info, *inferred.input)}
    initializers = {init.name: init for init in graph.initializer}
    types.update({name: init.data_type for name, init in initializers.items()})
    outputs = {output.name for output in graph.output}

    block: set[str] = set()
    for node in list(graph.node):
        if node.output[0] in outputs:
            continue
        is_identity_cast = node.op_type == "Cast" and _cast_target(node) == types.get(node.input[0])
        if is_identity_cast or (node.op_type == "Identity" and node.input[0] in initializers):
            _rewire(graph, node.output[0], node.input[0])
            graph.node.remove(node)
        elif node.op_type == "Cast" and _cast_target(node) == onnx.TensorProto.FLOAT:
            block.add(node.name)
    block |= _final_normalisation_nodes(graph)
    if keep_attention_scores_fp32:
        block |= _attention_score_nodes(graph)

    def is_blocked(node) -> bool:
        return node.op_type in op_block_list or node.name in block

    consumers = _consumers(graph)
    for node in graph.node:
        readers = consumers.get(node.output[0], []) if node.op_type == "Constant" else []
        if readers and all(is_blocked(reader) for reader in readers):
            block.add(node.name)
    for name, init in initializers.items():
        readers = consumers.get(name, [])
        fp32_readers = [reader for reader in readers if is_blocked(reader)]
        if init.data_type != onnx.TensorProto.FLOAT or len(fp32_readers) in (0, len(readers)):
            continue  # read only in float16, or only in float32: the converter handles it
        copy = graph.initializer.add()
        copy.CopyFrom(init)
        copy.name = f"{name}__fp32"
        for reader in fp32_readers:
            for i, input_name in enumerate(reader.input):
                if input_name == name:
                    reader.input[i] = copy.name
    del graph.value_info[:]  # stale after the rewiring; the converter infers them again
    return block


def _restore_float_outputs(onnx, proto) -> None:
    """Undo the converter's float16 cast on outputs made by blocked nodes (in place).

    With keep_io_types, the converter still retypes a graph output to float16 when a
    blocked node (here the final Div) produces it: it adds a Cast to float16 after the node
    and never casts back. That Cast is removed and the output typed float32 again.
    """
    graph = proto.graph
    for output in graph.output:
        if output.type.tensor_type.elem_type != onnx.TensorProto.FLOAT16:
            continue
        cast = next((n for n in graph.node if output.name in n.output), None)
        if cast is None or cast.op_type != "Cast" or _cast_target(cast) != onnx.TensorProto.FLOAT16:
            raise ClipsepError(f"FP16 conversion left graph output {output.name!r} in float16")
        producer = next(n for n in graph.node if cast.input[0] in n.output)
        producer.output[list(producer.output).index(cast.input[0])] = output.name
        _rewire(graph, cast.input[0], output.name)
        graph.node.remove(cast)
        for info in list(graph.value_info):
            if info.name == cast.input[0]:
                graph.value_info.remove(info)
        output.type.tensor_type.elem_type = onnx.TensorProto.FLOAT


def _rewire(graph, old: str, new: str) -> None:
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name == old:
                node.input[i] = new


def _cast_target(node) -> int | None:
    return next((attribute.i for attribute in node.attribute if attribute.name == "to"), None)


def _attention_score_nodes(graph) -> set[str]:
    """Names of the attention-score MatMuls (Q.K^T) and the mask/scale ops between them and Softmax."""
    producer = {output: node for node in graph.node for output in node.output}
    blocked: set[str] = set()
    for softmax in (node for node in graph.node if node.op_type == "Softmax"):
        node = producer.get(softmax.input[0])
        while node is not None and node.op_type in ("Add", "Mul", "Div", "Where"):
            blocked.add(node.name)
            # Follow the operand that is itself computed from Q and K (not the mask or a constant).
            node = next(
                (
                    producer[name]
                    for name in node.input
                    if name in producer and producer[name].op_type in ("MatMul", "Add", "Mul", "Div", "Where")
                ),
                None,
            )
        if node is not None and node.op_type == "MatMul":
            blocked.add(node.name)
    return blocked
