"""Weight-only INT8 text encoders: 8-bit weights in blocks, activations and arithmetic in FP32.

The graph keeps the FP32 export's interface (clipsep_rt.export.minilm_onnx or
text_encoder_onnx: int64 in, float32 unit rows out); only its weights change, with
onnxruntime.quantization's weight-only tools and no calibration data:

  * every MatMul with a constant 2-D weight (N x K) -> MatMulNBits (com.microsoft), bits=8,
    asymmetric uint8 in blocks of INT8_BLOCK_SIZE values along K, one float scale and one
    zero point per block (MatMulNBitsQuantizer). accuracy_level stays unset, so ONNX Runtime
    multiplies float32 activations by the dequantised weights (level 4, int8 activations, is
    faster and loses too much: MiniLM cosine 0.9946);
  * the vocabulary table (the Gather of a constant 2-D float table of at least
    MIN_TABLE_VALUES values: 30522 x 384 for MiniLM, half its weights) -> GatherBlockQuantized
    (com.microsoft), bits=8, blocks of INT8_BLOCK_SIZE along the embedding width, quantised by
    the same 8-bit block routine (DefaultWeightOnlyQuantizer.qbits_block_quant). The tool's own
    Gather path writes 4 bits only; a 4-bit table gives MiniLM cosine 0.9927. Only the looked-up
    rows are dequantised.

For all-MiniLM-L6-v2 against sentence-transformers, over 797 texts (the taxonomy's labels and
paraphrases, the query-variant file, the export's check texts): cosine >= 0.99954 (the worst
is the empty text), 24.2 MB against 90.4 MB for FP32 and 45.3 MB for FP16. What did not reach
0.999: quantize_dynamic (int8 activations) 0.859, per channel 0.967; int8 weights per output
column through DequantizeLinear 0.9966. The cost: ONNX Runtime's CPU kernel dequantises each
weight block per call, about 50 ms per short query on two busy cores against 5-10 ms for FP32.

Running the graph needs onnxruntime >= 1.23 (8-bit MatMulNBits on CPU since 1.22,
GatherBlockQuantized with bits=8 and zero points since 1.23).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from clipsep_rt.errors import ClipsepError
from clipsep_rt.io.files import atomic_output
from clipsep_rt.optional import describe_exception, import_optional

INT8_BLOCK_SIZE = 128  # weights per scale and zero point (a power of two >= 16)
INT8_MIN_COSINE = 0.999  # against the reference encoder (as FP16): below it the export leaves the graph out
MIN_TABLE_VALUES = 1 << 20  # a Gather table this large is the vocabulary's (MiniLM 11.7 M, CLIP 25.3 M)
PRECISION_KEY = "clipsep_rt.precision"
INT8_KEY = "clipsep_rt.int8"  # how the graph was quantised (JSON)
MS_DOMAIN = "com.microsoft"


def quantize_text_encoder_int8(src: str | Path, dst: str | Path, block_size: int = INT8_BLOCK_SIZE) -> Path:
    """Write the weight-only INT8 copy of the FP32 text-encoder graph `src` to `dst` (atomically); returns `dst`.

    What is quantised and why: see the module docstring. ClipsepError when `src` is not a
    readable FP32 graph or has no MatMul weights to quantise.
    """
    onnx = import_optional("onnx", "onnx")
    src, dst = Path(src), Path(dst)
    try:
        proto = onnx.load(str(src))
    except Exception as exc:
        raise ClipsepError(f"{src}: not a readable ONNX file: {describe_exception(exc)}") from exc
    if any(opset.domain == MS_DOMAIN for opset in proto.opset_import):
        raise ClipsepError(f"{src}: already has ONNX Runtime's quantised ops; quantise the FP32 export")
    weight_only, quantizer_module = _weight_only_tools()
    config = quantizer_module.DefaultWeightOnlyQuantConfig(
        block_size=block_size, is_symmetric=False, bits=8, op_types_to_quantize=("MatMul",), quant_axes=(("MatMul", 0),)
    )
    logger = logging.getLogger(quantizer_module.__name__)
    level = logger.level
    logger.setLevel(logging.WARNING)  # it logs every node it visits at INFO
    try:
        quantizer = quantizer_module.MatMulNBitsQuantizer(proto, algo_config=config)
        quantizer.process()
        quantized = quantizer.model.model
    except Exception as exc:
        raise ClipsepError(f"{src}: INT8 weight quantisation failed: {describe_exception(exc)}") from exc
    finally:
        logger.setLevel(level)
    matmuls = sum(node.op_type == "MatMulNBits" for node in quantized.graph.node)
    if not matmuls:
        raise ClipsepError(f"{src}: no MatMul with constant weights to quantise: not a text-encoder export")
    tables = _quantize_vocabulary(onnx, weight_only(config), quantized, block_size)
    props = {p.key: p.value for p in quantized.metadata_props}
    props[PRECISION_KEY] = "int8"
    props[INT8_KEY] = json.dumps({"weights": "8-bit blocks, asymmetric", "block_size": block_size,
                                  "matmuls": matmuls, "tables": tables, "activations": "fp32"})
    del quantized.metadata_props[:]
    onnx.helper.set_model_props(quantized, props)
    try:
        onnx.checker.check_model(quantized)
    except Exception as exc:
        raise ClipsepError(f"{src}: the INT8 graph fails onnx.checker: {describe_exception(exc)}") from exc
    with atomic_output(dst, overwrite=True) as temp:
        onnx.save_model(quantized, str(temp))
    return dst


def _weight_only_tools():
    """(DefaultWeightOnlyQuantizer, the matmul_nbits_quantizer module). Importing that module
    calls logging.basicConfig(level=INFO); the root logger is put back as it was."""
    import_optional("onnxruntime", "onnxruntime")
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    from onnxruntime.quantization import matmul_nbits_quantizer

    root.handlers[:] = handlers
    root.setLevel(level)
    return matmul_nbits_quantizer.DefaultWeightOnlyQuantizer, matmul_nbits_quantizer


def _quantize_vocabulary(onnx, quantizer, proto, block_size: int) -> list[str]:
    """Replace (in place) each Gather of a large constant float table by GatherBlockQuantized,
    8 bits in blocks along the table's width; returns the tables' names.

    The 8-bit block routine quantises a (K, N) weight in blocks along K into (N, K/bs, bs)
    uint8, scales and zero points (N, K/bs): for the transposed table (width x vocabulary)
    that is GatherBlockQuantized's layout for data (vocabulary, width), quantize_axis 1.
    """
    numpy_helper, helper, tensor = onnx.numpy_helper, onnx.helper, onnx.TensorProto
    graph = proto.graph
    initializers = {init.name: init for init in graph.initializer}
    done = []
    for node in list(graph.node):
        table = initializers.get(node.input[0]) if node.op_type == "Gather" else None
        if table is None or table.data_type != tensor.FLOAT or len(table.dims) != 2:
            continue
        if int(np.prod(table.dims)) < MIN_TABLE_VALUES or _gather_axis(helper, node) != 0:
            continue
        values = numpy_helper.to_array(table)  # (V, H)
        rows, width = values.shape
        packed, scales, zero_points = quantizer.qbits_block_quant(np.ascontiguousarray(values.T))
        blocks = scales.shape[1]
        data = packed.reshape(rows, blocks * block_size)[:, :width]
        graph.initializer.remove(table)
        graph.initializer.extend([
            helper.make_tensor(f"{table.name}_Q8", tensor.UINT8, [rows, width], np.ascontiguousarray(data).tobytes(), True),
            numpy_helper.from_array(scales.astype(np.float32), f"{table.name}_scales"),
            helper.make_tensor(f"{table.name}_zero_points", tensor.UINT8, [rows, blocks], zero_points.tobytes(), True),
        ])
        replacement = helper.make_node(
            "GatherBlockQuantized",
            [f"{table.name}_Q8", node.input[1], f"{table.name}_scales", f"{table.name}_zero_points"],
            list(node.output), name=f"{node.name}_Q8", domain=MS_DOMAIN,
            gather_axis=0, quantize_axis=1, block_size=block_size, bits=8,
        )
        graph.node.insert(list(graph.node).index(node), replacement)
        graph.node.remove(node)
        done.append(table.name)
    return done


def _gather_axis(helper, node) -> int:
    return next((helper.get_attribute_value(a) for a in node.attribute if a.name == "axis"), 0)
