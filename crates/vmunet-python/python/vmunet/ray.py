"""Archive-scale segmentation on Ray Data: a stateful callable for ``map_batches``, one
``vmunet.Segmenter`` per worker.

    import ray, vmunet.ray
    ray.init()
    ds = ray.data.read_images("photos/", include_paths=True, mode="RGB")
    ds.map_batches(
        vmunet.ray.SegmentBatch,
        fn_constructor_kwargs={"model": "model.onnx", "out": "masks/"},
        concurrency=2,
        batch_size=16,
    ).materialize()

With ``out``, each image's ``NAME_mask.png`` and ``NAME_overlay.png`` are written there
exactly as ``vmunet infer`` writes them (NAME: the file's stem, from the ``path`` column) and
the batch returned holds the paths; without it, the batch holds the masks.
"""

from __future__ import annotations

import os
from typing import Any, Dict, Optional

import numpy as np

from . import Segmenter

__all__ = ["SegmentBatch"]


class SegmentBatch:
    """A Ray Data batch callable (``map_batches(SegmentBatch, ...)``) that segments the
    ``image`` column (``uint8`` HxWxC arrays, as ``ray.data.read_images`` gives them).

    Constructor arguments (``fn_constructor_kwargs``): ``model`` (an ONNX file; ``None``: the
    built-in reference model), ``runtime`` (``tract`` or ``ort``), ``threads`` (per worker;
    default 1, so that ``concurrency`` workers share the CPUs), ``size``, ``threshold``,
    ``out`` (a folder for the masks, which needs the ``path`` column:
    ``read_images(..., include_paths=True)``)."""

    def __init__(
        self,
        model: Optional[str] = None,
        runtime: Optional[str] = None,
        threads: Optional[int] = 1,
        size: Optional[int] = None,
        threshold: float = 0.5,
        out: Optional[str] = None,
    ) -> None:
        self.segmenter = Segmenter(model, runtime, threads=threads, size=size, threshold=threshold)
        self.out = None if out is None else os.fspath(out)
        if self.out is not None:
            os.makedirs(self.out, exist_ok=True)

    def __call__(self, batch: Dict[str, Any]) -> Dict[str, Any]:
        images = batch["image"]
        paths = batch.get("path")
        if self.out is not None and paths is None:
            raise ValueError(
                "SegmentBatch(out=...) names masks after their images: read them with "
                "ray.data.read_images(..., include_paths=True)"
            )
        foreground = []
        masks = []
        written = []
        for i in range(len(images)):
            img = np.asarray(images[i])
            if self.out is not None:
                stem = os.path.splitext(os.path.basename(str(paths[i])))[0]
                rec = self.segmenter._segment_to(img, self.out, stem)
                written.append(rec["mask"])
                foreground.append(rec["foreground"])
            else:
                mask, rec = self.segmenter.segment(img)
                masks.append(mask)
                foreground.append(rec["foreground"])
        result: Dict[str, Any] = {"foreground": np.asarray(foreground, dtype=np.float64)}
        if paths is not None:
            result["path"] = np.asarray(paths)
        if self.out is not None:
            result["mask_path"] = np.asarray(written)
        else:
            result["mask"] = _stack(masks)
        return result


def _stack(masks):
    """One array when every mask has the same size, else an object array of masks."""
    if masks and all(m.shape == masks[0].shape for m in masks):
        return np.stack(masks)
    out = np.empty(len(masks), dtype=object)
    for i, m in enumerate(masks):
        out[i] = m
    return out
