"""Deployment: ONNX export with standard operators (see :mod:`.onnx_export`)."""
