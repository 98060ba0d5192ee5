"""`vmunet.Session`: the golden models' logits from Python, in tract and ONNX Runtime; float16
in and out; metadata as Python values; the GIL released while a model runs."""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import vmunet
from conftest import GOLDEN, MODELS

FORMS = ["scan", "chunked", "custom"]


def test_installed_package():
    """The suite runs on the installed wheel, not on the source tree."""
    where = Path(vmunet.__file__).resolve()
    assert "site-packages" in where.parts, f"vmunet imported from {where}, not an installed wheel"
    assert (where.parent / "py.typed").is_file()
    assert (where.parent / "_vmunet.pyi").is_file()
    assert vmunet.__version__


@pytest.mark.parametrize("runtime", ["tract", "ort"])
@pytest.mark.parametrize("form", FORMS)
def test_golden_logits(runtime, form):
    x = np.load(GOLDEN / "tiny-input.npy")
    want = np.load(GOLDEN / "tiny-logits.npy")
    s = vmunet.Session(GOLDEN / f"tiny-{form}.onnx", runtime=runtime)
    y = s.run(x)
    assert y.dtype == np.float32 and y.shape == want.shape
    diff = float(np.abs(y - want).max())
    print(f"golden tiny-{form} in {s.runtime}: max|diff| {diff:.2e}")
    assert diff <= 1e-5, f"tiny-{form} in {runtime}: max |logit diff| {diff}"
    assert y.flags.writeable


def test_ort_found_without_configuration():
    """ORT_DYLIB_PATH is unset here: the onnxruntime package's library is used."""
    assert "ORT_DYLIB_PATH" not in os.environ, "run this suite without ORT_DYLIB_PATH"
    lib = vmunet.ort_library()
    assert "onnxruntime" in lib["path"] and "capi" in lib["path"], lib
    assert lib["source"] == "the onnxruntime package"
    s = vmunet.Session(GOLDEN / "tiny-scan.onnx", runtime="ort")
    assert "ONNX Runtime" in s.runtime or "ort" in s.runtime.lower(), s.runtime


def test_metadata():
    s = vmunet.Session(GOLDEN / "tiny-scan.onnx")
    m = s.metadata
    want = np.load(GOLDEN / "tiny-logits.npy")
    assert s.input_size == tuple(np.load(GOLDEN / "tiny-input.npy").shape[2:])
    assert len(s.classes) == want.shape[1]
    assert s.activation in ("sigmoid", "softmax")
    assert s.precision == "fp32"
    assert s.preprocessing in ("isic", "synapse")
    assert m["scan"] == "scan"
    assert m["input"]["dtype"] == "float32"
    assert isinstance(s.history, list)
    assert "tract" in s.runtime


def test_float16_in_and_out(tmp_path):
    x = np.load(GOLDEN / "tiny-input.npy")
    s = vmunet.Session(GOLDEN / "tiny-scan.onnx")
    y32 = s.run(x)
    y16 = s.run(x.astype(np.float16))
    assert y16.dtype == np.float16
    y_ref = s.run(x.astype(np.float16).astype(np.float32))
    np.testing.assert_array_equal(y16, y_ref.astype(np.float16))
    assert np.abs(y16.astype(np.float32) - y32).max() < 0.05


def test_big_endian_input_is_read_as_its_values():
    x = np.load(GOLDEN / "tiny-input.npy")
    s = vmunet.Session(GOLDEN / "tiny-scan.onnx")
    np.testing.assert_array_equal(s.run(x.astype(">f4")), s.run(x))


def test_compressed_model_history(tmp_path):
    out = tmp_path / "tiny-fp16.onnx"
    vmunet.compress.fp16(GOLDEN / "tiny-scan.onnx", out)
    s = vmunet.Session(out)
    assert s.precision == "fp16"
    assert [h["kind"] for h in s.history] == ["fp16"] or s.history[-1]["kind"].startswith("fp16")
    x = np.load(GOLDEN / "tiny-input.npy")
    assert np.abs(s.run(x) - np.load(GOLDEN / "tiny-logits.npy")).max() < 0.05


def test_non_contiguous_input_is_read_correctly():
    x = np.load(GOLDEN / "tiny-input.npy")
    s = vmunet.Session(GOLDEN / "tiny-scan.onnx")
    # The same values through a transposed (non-contiguous) view.
    t = np.ascontiguousarray(x.transpose(0, 1, 3, 2)).transpose(0, 1, 3, 2)
    assert not t.flags.c_contiguous
    np.testing.assert_array_equal(s.run(t), s.run(x))


def test_the_gil_is_released_while_a_model_runs():
    """A Python thread keeps running while another thread's model runs: the largest pause
    the main thread sees is far shorter than the run."""
    s = vmunet.Segmenter(None)  # the built-in reference model
    session = vmunet.Session(s.metadata["path"])
    x = np.random.default_rng(0).uniform(0, 255, (8, 3, 128, 128)).astype(np.float32)
    session.run(x[:1])  # plan once
    done = threading.Event()
    span = {}

    def work():
        span["start"] = time.perf_counter()
        session.run(x)
        span["end"] = time.perf_counter()
        done.set()

    t = threading.Thread(target=work)
    sys.setswitchinterval(0.001)
    stamps = []
    t.start()
    while not done.is_set():
        stamps.append(time.perf_counter())
    t.join()
    run = span["end"] - span["start"]
    inside = [v for v in stamps if span["start"] <= v <= span["end"]]
    gaps = np.diff([span["start"], *inside, span["end"]])
    assert run > 0.05, f"the run took {run:.3f} s: too short to tell"
    assert gaps.max() < run / 2, f"main thread paused {gaps.max():.3f} s of a {run:.3f} s run"


def test_threads_share_a_session():
    x = np.load(GOLDEN / "tiny-input.npy")
    s = vmunet.Session(GOLDEN / "tiny-custom.onnx")
    want = s.run(x)
    out = [None] * 4

    def work(i):
        out[i] = s.run(x)

    ts = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    for y in out:
        np.testing.assert_array_equal(y, want)


def test_burn_runs_a_checkpoint():
    x = np.load(GOLDEN / "tiny-input.npy")
    s = vmunet.Session(GOLDEN / "tiny.bpk", runtime="burn")
    assert np.abs(s.run(x) - np.load(GOLDEN / "tiny-logits.npy")).max() <= 1e-5
