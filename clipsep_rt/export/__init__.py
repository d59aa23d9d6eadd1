"""Export a trained separator and the CLIP text encoder to ONNX and TensorRT engines."""
