"""Edits to an exported ONNX graph: state an input's or output's shape, drop the no-op nodes an
exporter leaves (Identity, Casts to the same type), and keep Resize's float parameters float32
after an FP16 conversion."""

from __future__ import annotations

import numpy as np

from clipsep_rt.optional import import_optional


def _onnx():
    return import_optional("onnx", "onnx")


def set_shape(info, dims: list) -> None:
    """Set a graph input's or output's (ValueInfoProto) dims: ints fixed, strings named dynamic axes."""
    shape = info.type.tensor_type.shape
    del shape.dim[:]
    for value in dims:
        dim = shape.dim.add()
        if isinstance(value, str):
            dim.dim_param = value
        else:
            dim.dim_value = value


def remove_noop_nodes(model) -> None:
    """Drop Identity nodes and Casts to the type their input already has, rewiring their users.

    A node whose output is a graph output is kept (its output name is part of the interface).
    """
    onnx = _onnx()
    inferred = onnx.shape_inference.infer_shapes(model)
    elem_types = {
        info.name: info.type.tensor_type.elem_type
        for info in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output)
    }
    elem_types.update({init.name: init.data_type for init in model.graph.initializer})
    graph_outputs = {output.name for output in model.graph.output}
    renames: dict[str, str] = {}
    kept = []
    for node in model.graph.node:
        for index, name in enumerate(node.input):
            if name in renames:
                node.input[index] = renames[name]
        noop = node.op_type == "Identity"
        if node.op_type == "Cast":
            target = next(attr.i for attr in node.attribute if attr.name == "to")
            noop = elem_types.get(node.input[0]) == target
        if noop and node.output[0] not in graph_outputs:
            renames[node.output[0]] = node.input[0]
        else:
            kept.append(node)
    del model.graph.node[:]
    model.graph.node.extend(kept)
    stale = [info for info in model.graph.value_info if info.name in renames]
    for info in stale:
        model.graph.value_info.remove(info)


def restore_float_resize_params(model) -> None:
    """Put Resize's `roi` and `scales` inputs (always float32 in ONNX) back to float32."""
    onnx = _onnx()
    TensorProto, numpy_helper = onnx.TensorProto, onnx.numpy_helper
    names = {name for node in model.graph.node if node.op_type == "Resize" for name in node.input[1:3] if name}
    for init in model.graph.initializer:
        if init.name in names and init.data_type == TensorProto.FLOAT16:
            init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float32), init.name))
    for node in model.graph.node:
        if node.op_type == "Constant" and node.output[0] in names:
            for attr in node.attribute:
                if attr.name == "value" and attr.t.data_type == TensorProto.FLOAT16:
                    value = numpy_helper.to_array(attr.t).astype(np.float32)
                    attr.t.CopyFrom(numpy_helper.from_array(value, attr.t.name))
    for info in model.graph.value_info:
        if info.name in names and info.type.tensor_type.elem_type == TensorProto.FLOAT16:
            info.type.tensor_type.elem_type = TensorProto.FLOAT
