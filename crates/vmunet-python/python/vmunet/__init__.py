"""vmunet from Python: VM-UNet models opened in tract or ONNX Runtime, images to masks, and the
toolkit's workflows (export, compression, parity, evaluation), all on the same Rust libraries
as the ``vmunet`` command line.

    import vmunet
    seg = vmunet.Segmenter("model.onnx", runtime="ort")
    mask, record = seg.segment("lesion.jpg")   # HxW uint8 class indices at the image's size
    logits = vmunet.Session("model.onnx").run(batch)   # NCHW float32 in and out

ONNX Runtime is found without configuration when the ``onnxruntime`` package is installed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import _ort, compress
from ._vmunet import SCAN_KERNELS, __version__
from ._vmunet import _Segmenter, _Session
from ._vmunet import evaluate as _evaluate
from ._vmunet import export as _export
from ._vmunet import model_info as _model_info
from ._vmunet import ort_library as _ort_library
from ._vmunet import parity as _parity
from .errors import (
    ImageError,
    InputError,
    ModelError,
    ModelNotFoundError,
    VmunetError,
)
from .reports import (
    ExportReport,
    Fp16Report,
    Int8Report,
    IsicEvalReport,
    ParityReport,
    SynapseEvalReport,
    eval_report,
)

__all__ = [
    "Session",
    "Segmenter",
    "export",
    "parity",
    "evaluate",
    "compress",
    "model_info",
    "ort_library",
    "VmunetError",
    "ModelError",
    "ModelNotFoundError",
    "ImageError",
    "InputError",
    "ExportReport",
    "Fp16Report",
    "Int8Report",
    "ParityReport",
    "IsicEvalReport",
    "SynapseEvalReport",
    "SCAN_KERNELS",
    "__version__",
]

PathLike = Union[str, "os.PathLike[str]"]


def _path(p: Optional[PathLike]) -> Optional[str]:
    return None if p is None else os.fspath(p)


def _ort_for(runtime: Optional[str], profile: Optional[PathLike], explicit: Optional[PathLike]) -> Optional[str]:
    # Only ONNX Runtime sessions (or a profile, which may choose it) need the library.
    if runtime == "ort" or profile is not None or explicit is not None:
        return _ort.library(_path(explicit))
    return None


class _Model:
    """What ``Session`` and ``Segmenter`` share: the model's metadata as Python values."""

    _info: Dict[str, Any]

    @property
    def metadata(self) -> Dict[str, Any]:
        """Everything the model file records (input, output, classes, preprocessing,
        precision, scan form, provenance, compression history) and how it runs."""
        return dict(self._info)

    @property
    def input_size(self) -> Optional[Tuple[int, int]]:
        """The fixed input (height, width), or ``None`` for a size-dynamic model."""
        s = self._info.get("fixed_size") or self._info.get("input_size")
        return tuple(s) if s else None  # type: ignore[return-value]

    @property
    def classes(self) -> List[str]:
        """Class names, one per output channel."""
        return list(self._info.get("classes") or [])

    @property
    def activation(self) -> Optional[str]:
        """The output activation (``sigmoid`` or ``softmax``) the logits take."""
        return self._info.get("activation")

    @property
    def precision(self) -> Optional[str]:
        """``fp32``, ``fp16``, ``int8``, ..."""
        return self._info.get("precision")

    @property
    def preprocessing(self) -> Optional[str]:
        """``isic`` (photos) or ``synapse`` (CT)."""
        return self._info.get("preprocessing")

    @property
    def history(self) -> List[Dict[str, Any]]:
        """The compression steps applied to the model, in order."""
        return list(self._info.get("history") or [])

    @property
    def runtime(self) -> str:
        """The runtime that runs the model, as it describes itself."""
        return str(self._info.get("runtime", ""))


class Session(_Model):
    """An exported model opened in tract (``runtime="tract"``, the default) or ONNX Runtime
    (``runtime="ort"``), or chosen by a device ``profile`` (``devices/*.toml``); with
    ``runtime="burn"``, a checkpoint. ``threads`` sizes the runtime's pool.

    ``run(x)`` takes an NCHW ``float32`` or ``float16`` numpy array (C-contiguous arrays are
    read without a copy on the Python side) and returns the logits in the same type. The GIL
    is released while the model runs, so threads may share or hold several sessions."""

    def __init__(
        self,
        path: PathLike,
        runtime: Optional[str] = None,
        profile: Optional[PathLike] = None,
        threads: Optional[int] = None,
        *,
        ort_library: Optional[PathLike] = None,
    ) -> None:
        self._inner = _Session(
            os.fspath(path),
            runtime,
            _path(profile),
            threads,
            _ort_for(runtime, profile, ort_library),
        )
        self._info = json.loads(self._inner.info)

    def run(self, x: np.ndarray) -> np.ndarray:
        """Runs one NCHW batch; returns the logits (N, classes, H, W)."""
        if not isinstance(x, np.ndarray):
            raise TypeError(f"expected a numpy array, got {type(x).__name__}")
        if x.dtype.kind != "f" or x.dtype.itemsize not in (2, 4):
            raise TypeError(f"expected a float32 or float16 array, got {x.dtype}")
        if x.ndim != 4:
            raise InputError(f"expected an NCHW array (4 dimensions), got shape {x.shape}")
        dtype = np.dtype(x.dtype).newbyteorder("=")
        x = np.ascontiguousarray(x, dtype=dtype)
        data, shape = self._inner.run(x.__array_interface__["data"][0], list(x.shape), dtype.name)
        return np.frombuffer(data, dtype=dtype).reshape(shape)

    __call__ = run

    def __repr__(self) -> str:
        return f"vmunet.Session({self._info.get('path', '')!r}, runtime={self.runtime!r})"


Image = Union[PathLike, bytes, bytearray, memoryview, np.ndarray]


class Segmenter(_Model):
    """Images to masks with the pipeline ``vmunet infer`` runs: the official preprocessing,
    the model, its activation, the resize back, threshold (one class) or argmax.

    ``path``: an ONNX file (``runtime`` ``tract`` or ``ort``, or a ``profile``), a checkpoint
    with ``runtime="burn"``, or ``None`` for the reference model built into the package.
    ``size``: the model input (H = W; fixed-size models use theirs); ``threshold``: the
    foreground probability of one-class models."""

    def __init__(
        self,
        path: Optional[PathLike] = None,
        runtime: Optional[str] = None,
        profile: Optional[PathLike] = None,
        threads: Optional[int] = None,
        *,
        size: Optional[int] = None,
        threshold: float = 0.5,
        ort_library: Optional[PathLike] = None,
    ) -> None:
        self._inner = _Segmenter(
            _path(path),
            runtime,
            _path(profile),
            threads,
            _ort_for(runtime, profile, ort_library),
            size,
            float(threshold),
        )
        self._info = json.loads(self._inner.info)

    @property
    def run_size(self) -> Tuple[int, int]:
        """The (height, width) images are resized to for the model."""
        h, w = self._info["run_size"]
        return (h, w)

    def segment(self, image: Image) -> Tuple[np.ndarray, Dict[str, Any]]:
        """Segments one image: a file path, encoded bytes (JPEG, PNG, ...), or a decoded
        ``uint8`` array (H, W, 3), (H, W, 4) or (H, W) as PIL and imageio give it.

        Returns ``(mask, record)``: an (H, W) ``uint8`` array of class indices (0/1 for a
        one-class model) at the image's size, and a dict (size, classes, foreground
        fraction, stage timings)."""
        if isinstance(image, np.ndarray):
            if image.dtype != np.uint8:
                raise TypeError(f"expected a uint8 image array, got {image.dtype}")
            a = np.ascontiguousarray(image)
            out = self._inner.segment_pixels(a.__array_interface__["data"][0], list(a.shape))
        elif isinstance(image, (bytes, bytearray, memoryview)):
            out = self._inner.segment_bytes(bytes(image), "<bytes>")
        elif isinstance(image, (str, os.PathLike)):
            out = self._inner.segment_path(os.fspath(image))
        else:
            raise TypeError(
                f"expected a path, bytes or a uint8 numpy array, got {type(image).__name__}"
            )
        data, h, w, record = out
        return np.frombuffer(data, dtype=np.uint8).reshape(h, w), json.loads(record)

    __call__ = segment

    def _segment_to(self, image: np.ndarray, out: PathLike, stem: str) -> Dict[str, Any]:
        """Segments a decoded ``uint8`` array and writes ``STEM_mask.png`` and
        ``STEM_overlay.png`` into ``out`` as ``vmunet infer`` does; returns the row
        ``segment_many`` gives for a file (mask and overlay paths, size, timing, foreground)."""
        if image.dtype != np.uint8:
            raise TypeError(f"expected a uint8 image array, got {image.dtype}")
        a = np.ascontiguousarray(image)
        return json.loads(
            self._inner.segment_pixels_to(
                a.__array_interface__["data"][0], list(a.shape), os.fspath(out), stem
            )
        )

    def segment_many(
        self,
        paths: Union[PathLike, Iterable[PathLike]],
        out: PathLike,
        csv: Optional[PathLike] = None,
    ) -> List[Dict[str, Any]]:
        """``vmunet infer`` on files and folders: every image is decoded first (a bad one
        raises before anything is written), then ``NAME_mask.png``, ``NAME_overlay.png`` and
        ``timing.csv`` (or ``csv``) are written into ``out``. Returns one dict per image."""
        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        result = json.loads(
            self._inner.segment_many([os.fspath(p) for p in paths], os.fspath(out), _path(csv))
        )
        return result["rows"]

    def __repr__(self) -> str:
        return f"vmunet.Segmenter({self._info.get('path', '')!r}, runtime={self.runtime!r})"


def export(
    checkpoint: PathLike,
    out: PathLike,
    *,
    scan: Optional[str] = None,
    size: Optional[int] = None,
    opset: int = 17,
    dynamic_hw: bool = False,
    max_size: int = 1024,
    chunk: Optional[int] = None,
    chunk_memory_mb: Optional[int] = None,
    class_names: Optional[Sequence[str]] = None,
    preprocessing: Optional[str] = None,
    profile: Optional[PathLike] = None,
) -> ExportReport:
    """``vmunet export``: a checkpoint (vmunet ``.bpk``, official ``.pth``, ``.safetensors``)
    to ONNX. ``scan``: ``scan`` (standard ops), ``chunked`` (TensorRT) or ``custom`` (the
    fastest, vmunet's runtimes); ``size`` defaults to the size the checkpoint was trained at."""
    text, data = _export(
        os.fspath(checkpoint),
        os.fspath(out),
        scan,
        size,
        opset,
        dynamic_hw,
        max_size,
        chunk,
        chunk_memory_mb,
        None if class_names is None else list(class_names),
        preprocessing,
        _path(profile),
    )
    return ExportReport._from(text, data)


def parity(
    model: PathLike,
    *,
    checkpoint: Optional[PathLike] = None,
    images: Optional[PathLike] = None,
    max_images: int = 8,
    random: int = 2,
    threshold: float = 1e-4,
    size: int = 256,
    ort_library: Optional[PathLike] = None,
) -> ParityReport:
    """``vmunet parity``: every available runtime on ``model`` against the ``checkpoint`` run
    in burn (or against tract without one), on ``random`` random inputs and up to
    ``max_images`` images of ``images``. Check ``report.passed``."""
    text, data = _parity(
        os.fspath(model),
        _path(checkpoint),
        _path(images),
        max_images,
        random,
        threshold,
        size,
        _ort.library(_path(ort_library)),
    )
    return ParityReport._from(text, data)


def evaluate(
    data: PathLike,
    *,
    model: Optional[PathLike] = None,
    checkpoint: Optional[PathLike] = None,
    runtime: Optional[str] = None,
    profile: Optional[PathLike] = None,
    threads: Optional[int] = None,
    size: Optional[int] = None,
    batch_size: int = 8,
    max_images: Optional[int] = None,
    threshold: float = 0.5,
    ort_library: Optional[PathLike] = None,
) -> Union[IsicEvalReport, SynapseEvalReport]:
    """``vmunet eval``: the paper's metrics of an ONNX ``model`` (in ``runtime`` or
    ``profile``) or a ``checkpoint`` (in burn) on a dataset folder: ISIC (its ``val`` split,
    or ``images/`` + ``masks/``) or Synapse."""
    text, report = _evaluate(
        os.fspath(data),
        _path(model),
        _path(checkpoint),
        runtime,
        _path(profile),
        threads,
        _ort_for(runtime, profile, ort_library) if model is not None else None,
        size,
        batch_size,
        max_images,
        float(threshold),
    )
    return eval_report(text, report)


def model_info(path: PathLike) -> Dict[str, Any]:
    """``vmunet info`` for one ONNX file: input, output and metadata, without opening a
    runtime."""
    return json.loads(_model_info(os.fspath(path)))


def ort_library(path: Optional[PathLike] = None) -> Dict[str, str]:
    """The ONNX Runtime library sessions load: ``path``, else ``ORT_DYLIB_PATH``, else the
    ``onnxruntime`` package's, else the usual search. Raises ``VmunetError`` when none (or
    one too old) is found."""
    p, version, source = _ort_library(_ort.library(_path(path)))
    if path is None and source == "given by the caller":
        source = "the onnxruntime package"
    return {"path": p, "version": version, "source": source}
