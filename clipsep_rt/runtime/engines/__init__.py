"""Engines: the `Engine` protocol and its torch, ONNX Runtime and TensorRT implementations,
the backend choice, the engine-folder format and the one loader for checkpoints and engine
folders."""
