"""Serving a model folder: the Predictor (the one inference path), its backends (torch, fastai pickle, ONNX
Runtime), ONNX export, and what the Gradio demo shows (`demo`)."""
