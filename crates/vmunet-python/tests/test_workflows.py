"""The workflows from Python write what the command line writes: export, fp16 and int8 byte
for byte; parity and evaluation report the same numbers, as dataclasses."""

from __future__ import annotations

import json

import pytest

import vmunet
from conftest import GOLDEN, MODELS


def test_export_equals_the_cli(cli, tmp_path):
    ck = MODELS / "isic2017-16-128.bpk"
    cli("export", "--checkpoint", ck, "--scan", "custom", "--class-names", "lesion", "-o", tmp_path / "cli.onnx")
    r = vmunet.export(ck, tmp_path / "py.onnx", scan="custom", class_names=["lesion"])
    assert isinstance(r, vmunet.ExportReport)
    assert r.scan == "custom" and r.size == 128 and r.channels == 3 and r.preprocessing == "isic"
    assert r.bytes == (tmp_path / "py.onnx").stat().st_size
    assert str(r).startswith("wrote ")
    assert (tmp_path / "py.onnx").read_bytes() == (tmp_path / "cli.onnx").read_bytes()


def test_fp16_equals_the_cli(cli, reference_onnx, isic, tmp_path):
    calib = isic / "train" / "images"
    p = cli("compress", "fp16", "--model", reference_onnx, "--calib", calib, "--calib-count", 8,
            "-o", tmp_path / "cli.onnx", "--json")
    r = vmunet.compress.fp16(reference_onnx, tmp_path / "py.onnx", calib=calib, calib_count=8)
    assert isinstance(r, vmunet.Fp16Report)
    assert (tmp_path / "py.onnx").read_bytes() == (tmp_path / "cli.onnx").read_bytes()
    want = json.loads(p.stdout)
    got = r.to_dict()
    for k in ("half_nodes", "casts", "half_initializers", "range_check", "bytes"):
        assert got[k] == want[k], k
    assert [k["node"] for k in got["kept_fp32"]] == [k["node"] for k in want["kept_fp32"]]


@pytest.mark.parametrize("fmt", ["qdq", "qoperator"])
def test_int8_equals_the_cli(fmt, cli, reference_onnx, isic, tmp_path):
    calib = isic / "train" / "images"
    p = cli("compress", "int8", "--model", reference_onnx, "--calib", calib, "--calib-count", 8,
            "--format", fmt, "--method", "percentile", "-o", tmp_path / "cli.onnx", "--json")
    r = vmunet.compress.int8(reference_onnx, tmp_path / "py.onnx", calib=calib, calib_count=8,
                             format=fmt, method="percentile")
    assert isinstance(r, vmunet.Int8Report)
    assert (tmp_path / "py.onnx").read_bytes() == (tmp_path / "cli.onnx").read_bytes()
    want = json.loads(p.stdout)
    assert r.quantized == want["quantized"] and r.format == want["format"] == fmt
    assert vmunet.Session(tmp_path / "py.onnx").precision == "int8"


def test_parity_against_the_checkpoint(reference_onnx):
    r = vmunet.parity(reference_onnx, checkpoint=MODELS / "isic2017-16-128.bpk", random=1, size=128)
    assert isinstance(r, vmunet.ParityReport)
    assert r.passed, str(r)
    # Both runtimes ran (ONNX Runtime from the onnxruntime package) and agree with burn.
    assert [row.ran for row in r.runtimes] == [True, True], [row.error for row in r.runtimes]
    assert all(row.passed and row.max_abs_diff <= r.threshold for row in r.runtimes)
    assert "|" in str(r)


def test_parity_fails_on_a_different_model(tmp_path):
    """A model that is not the checkpoint fails parity (the report says so, no exception)."""
    r = vmunet.parity(GOLDEN / "tiny-scan.onnx", checkpoint=MODELS / "isic2017-16-128.bpk", random=1)
    assert not r.passed


def test_evaluate_equals_the_cli(cli, reference_onnx, isic, tmp_path):
    out = tmp_path / "eval.json"
    cli("eval", "--model", reference_onnx, "--data", isic, "--max-images", 24, "--json", out)
    want = json.loads(out.read_text())
    r = vmunet.evaluate(isic, model=reference_onnx, max_images=24)
    assert isinstance(r, vmunet.IsicEvalReport)
    assert r.images == want["images"] == 24
    for k in ("dsc", "miou", "acc", "sen", "spe", "loss"):
        assert getattr(r, k) == pytest.approx(want[k], abs=1e-9), k
    assert "DSC" in str(r)
    assert r.to_dict()["dsc"] == r.dsc
