"""`vmunet.Segmenter`: the masks `vmunet infer` writes, from a path, from bytes and from the
decoded pixels PIL gives, on real validation images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import vmunet
from conftest import MODELS

COUNT = 24


@pytest.fixture(scope="module")
def val_images(isic):
    images = sorted((isic / "val" / "images").iterdir())
    step = max(1, len(images) // COUNT)
    return images[::step][:COUNT]


@pytest.fixture(scope="module")
def cli_masks(val_images, cli, reference_onnx, tmp_path_factory):
    """`vmunet infer` on the same images, in tract and in ONNX Runtime."""
    out = {}
    for runtime in ("tract", "ort"):
        d = tmp_path_factory.mktemp(f"infer-{runtime}")
        cli("infer", "--model", reference_onnx, "--runtime", runtime, "--out", d, *val_images)
        out[runtime] = d
    return out


def png(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


@pytest.mark.parametrize("runtime", ["tract", "ort"])
def test_masks_equal_vmunet_infer(runtime, val_images, cli_masks, reference_onnx):
    seg = vmunet.Segmenter(reference_onnx, runtime=runtime)
    assert seg.classes == ["lesion"]
    assert seg.run_size == (128, 128)
    for p in val_images:
        want = png(cli_masks[runtime] / f"{p.stem}_mask.png")
        from_path, record = seg.segment(p)
        from_bytes, _ = seg.segment(p.read_bytes())
        pixels = np.asarray(Image.open(p).convert("RGB"))
        from_pixels, _ = seg.segment(pixels)
        assert from_path.dtype == np.uint8 and from_path.shape == want.shape
        assert record["width"] == want.shape[1] and record["height"] == want.shape[0]
        assert set(np.unique(from_path)) <= {0, 1}
        np.testing.assert_array_equal(from_path * 255, want, err_msg=f"{p.name} (path)")
        np.testing.assert_array_equal(from_bytes, from_path, err_msg=f"{p.name} (bytes)")
        np.testing.assert_array_equal(from_pixels, from_path, err_msg=f"{p.name} (pixels)")
        assert abs(record["foreground"] - from_path.mean()) < 1e-9


def test_segment_many_writes_what_infer_writes(val_images, cli_masks, reference_onnx, tmp_path):
    seg = vmunet.Segmenter(reference_onnx)
    rows = seg.segment_many(val_images[:6], tmp_path)
    assert len(rows) == 6
    assert (tmp_path / "timing.csv").is_file()
    for p in val_images[:6]:
        for kind in ("mask", "overlay"):
            name = f"{p.stem}_{kind}.png"
            assert (tmp_path / name).read_bytes() == (cli_masks["tract"] / name).read_bytes(), name


def test_built_in_model_is_the_default(val_images, cli, tmp_path):
    """`Segmenter()` runs the reference model compiled into the package, as `vmunet infer`
    without --model does."""
    cli("infer", "--out", tmp_path, val_images[0])
    mask, record = vmunet.Segmenter().segment(val_images[0])
    np.testing.assert_array_equal(mask * 255, png(tmp_path / f"{val_images[0].stem}_mask.png"))


def test_grey_and_rgba_pixels(val_images):
    seg = vmunet.Segmenter()
    img = Image.open(val_images[0])
    rgba, _ = seg.segment(np.asarray(img.convert("RGBA")))
    grey, _ = seg.segment(np.asarray(img.convert("L")))
    assert rgba.shape == grey.shape == (img.height, img.width)
