"""Bad input raises a clear exception carrying the library's message; the interpreter lives
on."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import vmunet
from conftest import GOLDEN


@pytest.fixture(scope="module")
def session():
    return vmunet.Session(GOLDEN / "tiny-scan.onnx")


def test_wrong_dtype(session):
    x = np.load(GOLDEN / "tiny-input.npy")
    with pytest.raises(TypeError, match="float32 or float16.*float64"):
        session.run(x.astype(np.float64))
    with pytest.raises(TypeError, match="int32"):
        session.run(x.astype(np.int32))
    with pytest.raises(TypeError, match="numpy array"):
        session.run(x.tolist())
    with pytest.raises(TypeError, match="uint8"):
        vmunet.Segmenter().segment(np.zeros((8, 8, 3), np.float32))


def test_wrong_shape(session):
    x = np.load(GOLDEN / "tiny-input.npy")
    with pytest.raises(vmunet.InputError, match="4 dimensions"):
        session.run(x[0])
    with pytest.raises(vmunet.InputError) as e:
        session.run(np.zeros((1, 5, *x.shape[2:]), np.float32))
    assert isinstance(e.value, ValueError) and "5" in str(e.value)
    with pytest.raises(vmunet.InputError, match="channels"):
        vmunet.Segmenter().segment(np.zeros((8, 8, 2), np.uint8))


def test_corrupt_image(tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 40)
    seg = vmunet.Segmenter()
    with pytest.raises(vmunet.ImageError, match="broken.jpg"):
        seg.segment(bad)
    with pytest.raises(vmunet.ImageError):
        seg.segment(b"not an image")
    out = tmp_path / "out"
    with pytest.raises(vmunet.ImageError, match="broken.jpg"):
        seg.segment_many([bad], out)
    assert not out.exists() or not any(out.iterdir()), "nothing is written when an input is bad"


def test_missing_model(tmp_path):
    missing = tmp_path / "nope.onnx"
    with pytest.raises(vmunet.ModelNotFoundError, match="nope.onnx") as e:
        vmunet.Session(missing)
    assert isinstance(e.value, FileNotFoundError)
    with pytest.raises(vmunet.ModelNotFoundError):
        vmunet.Segmenter(missing, runtime="ort")
    with pytest.raises(vmunet.ModelNotFoundError, match="nope.bpk"):
        vmunet.export(tmp_path / "nope.bpk", tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()


def test_corrupt_model(tmp_path):
    bad = tmp_path / "truncated.onnx"
    bad.write_bytes((GOLDEN / "tiny-scan.onnx").read_bytes()[:5000])
    for runtime in ("tract", "ort"):
        with pytest.raises(vmunet.ModelError, match="truncated.onnx"):
            vmunet.Session(bad, runtime=runtime)


def test_unknown_options(tmp_path):
    with pytest.raises(vmunet.InputError, match="runtime"):
        vmunet.Session(GOLDEN / "tiny-scan.onnx", runtime="tensorflow")
    with pytest.raises(vmunet.InputError, match="scan"):
        vmunet.export(GOLDEN / "tiny.bpk", tmp_path / "x.onnx", scan="loop")
    with pytest.raises(vmunet.InputError, match="threshold"):
        vmunet.Segmenter(threshold=2.0)
    with pytest.raises(vmunet.VmunetError, match="already"):
        vmunet.compress.fp16(GOLDEN / "tiny-scan.onnx", tmp_path / "a.onnx")
        vmunet.compress.fp16(tmp_path / "a.onnx", tmp_path / "b.onnx")


def test_the_interpreter_survives_every_bad_input(tmp_path):
    """All of the above in a child interpreter, which must exit normally afterwards."""
    code = f"""
import numpy as np, vmunet
bad = {str(tmp_path / 'broken.png')!r}
open(bad, 'wb').write(b'\\x89PNG\\r\\n\\x1a\\n' + b'\\x00' * 30)
for f in (lambda: vmunet.Segmenter().segment(bad),
          lambda: vmunet.Session({str(GOLDEN / 'tiny-scan.onnx')!r}).run(np.zeros((1, 3, 7, 7), np.float32)),
          lambda: vmunet.Session('/nonexistent.onnx', runtime='ort')):
    try:
        f()
    except vmunet.VmunetError as e:
        print(type(e).__name__, str(e)[:60])
print('alive')
"""
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip().endswith("alive"), p.stdout
    assert p.stdout.count("Error") == 3, p.stdout


def test_a_failed_onnx_runtime_load_is_not_remembered(tmp_path):
    """A wrong library named first is an error; the process can still open ONNX Runtime
    afterwards (a fresh interpreter: the first successful load decides for the process)."""
    fake = tmp_path / "libonnxruntime.so.1.99.0"
    fake.write_bytes(b"not a shared library")
    code = f"""
import vmunet
try:
    vmunet.Session({str(GOLDEN / 'tiny-scan.onnx')!r}, runtime='ort', ort_library={str(fake)!r})
except vmunet.ModelError as e:
    print('refused:', 'libonnxruntime.so.1.99.0' in str(e))
s = vmunet.Session({str(GOLDEN / 'tiny-scan.onnx')!r}, runtime='ort')
print('opened:', s.runtime)
"""
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "refused: True" in p.stdout and "opened:" in p.stdout, p.stdout
