"""``vmunet compress``: float16 and int8 versions of an exported float32 model, written to a
file, each returning its report."""

from __future__ import annotations

import os
from typing import Optional, Sequence, Union

from ._vmunet import fp16 as _fp16
from ._vmunet import int8 as _int8
from .reports import Fp16Report, Int8Report

__all__ = ["fp16", "int8"]

PathLike = Union[str, "os.PathLike[str]"]


def _path(p: Optional[PathLike]) -> Optional[str]:
    return None if p is None else os.fspath(p)


def fp16(
    model: PathLike,
    out: PathLike,
    *,
    calib: Optional[PathLike] = None,
    calib_count: int = 32,
    size: Optional[int] = None,
    keep_fp32: Sequence[str] = (),
    keep_io_fp32: bool = False,
    layernorm_fp16: bool = False,
) -> Fp16Report:
    """float16 weights and activations; the selective scan, softplus, exponentials and
    LayerNorm stay float32, as does any node whose range on the ``calib`` images (else
    synthetic ones) does not fit float16."""
    text, data = _fp16(
        os.fspath(model),
        os.fspath(out),
        _path(calib),
        calib_count,
        size,
        list(keep_fp32),
        keep_io_fp32,
        layernorm_fp16,
    )
    return Fp16Report._from(text, data)


def int8(
    model: PathLike,
    out: PathLike,
    *,
    calib: Optional[PathLike] = None,
    calib_count: int = 32,
    size: Optional[int] = None,
    format: Optional[str] = None,
    method: str = "minmax",
    activations: Optional[str] = None,
    symmetric: bool = False,
    reduce_range: bool = False,
    quantize_scan_proj: bool = False,
    quantize_output_layer: bool = False,
    fp32_constants: bool = False,
    exclude: Sequence[str] = (),
    dynamic: bool = False,
    profile: Optional[PathLike] = None,
) -> Int8Report:
    """int8 post-training quantisation: weights per channel, activations per tensor
    calibrated on the ``calib`` images (``method``: ``minmax``, ``percentile``,
    ``percentile:P``, ``entropy``), in ``format`` ``qdq`` (ONNX Runtime, TensorRT) or
    ``qoperator`` (tract); ``dynamic=True`` needs no images. A device ``profile`` picks the
    form."""
    text, data = _int8(
        os.fspath(model),
        os.fspath(out),
        _path(calib),
        calib_count,
        size,
        format,
        method,
        activations,
        symmetric,
        reduce_range,
        quantize_scan_proj,
        quantize_output_layer,
        fp32_constants,
        list(exclude),
        dynamic,
        _path(profile),
    )
    return Int8Report._from(text, data)
