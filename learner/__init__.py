"""earshot's library: audio in, a fine-tuned classifier out. Jobs and the app are thin shells over it.

Heavy imports (torch, fastai, timm) stay inside the modules that need them, so that serving with the
ONNX backend imports none of them.
"""

__version__ = "0.1.0"
