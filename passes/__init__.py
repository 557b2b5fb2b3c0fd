"""Graph passes over onnx-ir models, one per module."""
