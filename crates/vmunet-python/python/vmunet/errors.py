"""The exceptions vmunet raises. Every one carries the library's message: the file, the
tensor or the value at fault and what is wrong with it, as the command line prints it."""

from __future__ import annotations

__all__ = [
    "VmunetError",
    "ModelError",
    "ModelNotFoundError",
    "ImageError",
    "InputError",
]


class VmunetError(Exception):
    """A vmunet workflow failed (export, compression, parity, evaluation, ...)."""


class ModelError(VmunetError):
    """A model cannot be opened or run (a malformed ONNX file, a runtime failure)."""


class ModelNotFoundError(ModelError, FileNotFoundError):
    """A model or checkpoint file does not exist."""


class ImageError(VmunetError, ValueError):
    """An image cannot be read or decoded (a corrupt or truncated file, unknown format)."""


class InputError(VmunetError, ValueError):
    """An input does not fit the model or the call (shape, channels, an unknown option)."""
