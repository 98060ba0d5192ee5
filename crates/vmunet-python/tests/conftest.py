"""Shared fixtures of the pytest suite. It runs on the wheel installed into a fresh virtual
environment (`make test-python`), never on the source tree: `test_installed_package` checks
where `vmunet` was imported from.

Environment: VMUNET_BIN (the `vmunet` binary the Python results are compared with),
VMUNET_SHARED (the shared data folder; tests that need real images skip without it),
VMUNET_REPO (the checkout, for the golden and reference models; default: found from here)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(os.environ.get("VMUNET_REPO", Path(__file__).resolve().parents[3]))
SHARED = Path(os.environ.get("VMUNET_SHARED", REPO.parent / "shared"))
GOLDEN = REPO / "onnx" / "golden"
MODELS = REPO / "models"
ISIC = SHARED / "data" / "isic2017"


@pytest.fixture(scope="session")
def vmunet_bin() -> Path:
    """The command-line tool built from the same sources."""
    b = os.environ.get("VMUNET_BIN")
    if not b or not Path(b).is_file():
        pytest.skip("VMUNET_BIN is not set to the vmunet binary (run through `make test-python`)")
    return Path(b)


@pytest.fixture(scope="session")
def cli(vmunet_bin):
    """Runs `vmunet ARGS...`; fails the test with its output when it fails. The binary loads
    the same ONNX Runtime as the package: the onnxruntime package's library, named in
    ORT_DYLIB_PATH for it alone (the suite itself runs without the variable)."""
    from vmunet import _ort

    env = dict(os.environ)
    lib = _ort.package_library()
    if lib:
        env["ORT_DYLIB_PATH"] = lib

    def run(*args):
        p = subprocess.run(
            [str(vmunet_bin), *map(str, args)],
            capture_output=True,
            text=True,
            env=env,
        )
        assert p.returncode == 0, f"vmunet {' '.join(map(str, args))} failed:\n{p.stdout}\n{p.stderr}"
        return p

    return run


@pytest.fixture(scope="session")
def isic() -> Path:
    """The real ISIC 2017 pairs at 256x256 (1,400 train, 300 val)."""
    if not (ISIC / "val" / "images").is_dir():
        pytest.skip(f"real ISIC images not found at {ISIC} (the shared data folder is absent)")
    return ISIC


@pytest.fixture(scope="session")
def reference_onnx(tmp_path_factory, cli) -> Path:
    """The shipped reference model exported by the CLI (the checkpoint's own size)."""
    out = tmp_path_factory.mktemp("reference") / "reference.onnx"
    cli("export", "--checkpoint", MODELS / "isic2017-16-128.bpk", "--class-names", "lesion",
        "--scan", "custom", "-o", out)
    return out
