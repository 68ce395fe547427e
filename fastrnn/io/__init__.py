"""Trained models in and out: PyTorch, Keras and ONNX importers; save and load without pickle.

Layout maps only: each importer reads the framework's weights into the lessons' parameter keys
(:class:`Spec`), and the returned :class:`Imported` model runs them on fastrnn's kernels.  The
frameworks are imported inside the importer functions, never when fastrnn is imported.
"""
from fastrnn.io._model import Imported
from fastrnn.io._serial import load, save
from fastrnn.io._spec import Spec
from fastrnn.io._keras import from_keras
from fastrnn.io._onnx import from_onnx
from fastrnn.io._torch import from_torch

__all__ = ["from_torch", "from_keras", "from_onnx", "load", "save", "Imported", "Spec"]
