"""Finding ONNX Runtime without configuration: the ``onnxruntime`` package's own library
(``onnxruntime/capi/libonnxruntime.so*``) when the package is installed and ``ORT_DYLIB_PATH``
is not set; otherwise the library's usual search (``ORT_DYLIB_PATH``, beside the executable,
the system loader)."""

from __future__ import annotations

import glob
import importlib.util
import os
from pathlib import Path
from typing import Optional


def package_library() -> Optional[str]:
    """The ``libonnxruntime`` inside the installed ``onnxruntime`` package, if any (found
    without importing the package)."""
    try:
        spec = importlib.util.find_spec("onnxruntime")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        capi = Path(root) / "capi"
        found = sorted(
            glob.glob(str(capi / "libonnxruntime.so*"))
            + glob.glob(str(capi / "libonnxruntime*.dylib"))
            + glob.glob(str(capi / "onnxruntime.dll"))
        )
        # libonnxruntime.so.1.23.2 rather than a providers library or a bare link.
        found = [f for f in found if "providers" not in os.path.basename(f)]
        if found:
            return max(found, key=len)
    return None


def library(explicit: Optional[str] = None) -> Optional[str]:
    """The library to hand to a session: ``explicit``, else none when ``ORT_DYLIB_PATH`` is
    set (the library reads it), else the ``onnxruntime`` package's."""
    if explicit is not None:
        return os.fspath(explicit)
    if os.environ.get("ORT_DYLIB_PATH"):
        return None
    return package_library()
