"""Query encoders (open_clip CLIP, MiniLM, exported ONNX text towers) and the registry that
builds one from a spec string."""
