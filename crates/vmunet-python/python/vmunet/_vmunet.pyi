# Type stubs of the extension module (crates/vmunet-python/src). The package around it
# (vmunet/__init__.py, compress.py) is the public API; these are its raw calls.
from typing import List, Optional, Tuple

__version__: str
SCAN_KERNELS: str

class _Session:
    def __init__(
        self,
        path: str,
        runtime: Optional[str] = None,
        profile: Optional[str] = None,
        threads: Optional[int] = None,
        ort_library: Optional[str] = None,
    ) -> None: ...
    @property
    def info(self) -> str: ...
    def run(self, address: int, shape: List[int], dtype: str) -> Tuple[bytearray, List[int]]: ...

class _Segmenter:
    def __init__(
        self,
        path: Optional[str] = None,
        runtime: Optional[str] = None,
        profile: Optional[str] = None,
        threads: Optional[int] = None,
        ort_library: Optional[str] = None,
        size: Optional[int] = None,
        threshold: float = 0.5,
    ) -> None: ...
    @property
    def info(self) -> str: ...
    def segment_path(self, path: str) -> Tuple[bytearray, int, int, str]: ...
    def segment_bytes(self, data: bytes, name: str) -> Tuple[bytearray, int, int, str]: ...
    def segment_pixels(self, address: int, shape: List[int]) -> Tuple[bytearray, int, int, str]: ...
    def segment_pixels_to(self, address: int, shape: List[int], out: str, stem: str) -> str: ...
    def segment_many(self, inputs: List[str], out: str, csv: Optional[str] = None) -> str: ...

def export(
    checkpoint: str,
    out: str,
    scan: Optional[str] = None,
    size: Optional[int] = None,
    opset: int = 17,
    dynamic_hw: bool = False,
    max_size: int = 1024,
    chunk: Optional[int] = None,
    chunk_memory_mb: Optional[int] = None,
    class_names: Optional[List[str]] = None,
    preprocessing: Optional[str] = None,
    profile: Optional[str] = None,
) -> Tuple[str, str]: ...
def fp16(
    model: str,
    out: str,
    calib: Optional[str] = None,
    calib_count: int = 32,
    size: Optional[int] = None,
    keep_fp32: List[str] = ...,
    keep_io_fp32: bool = False,
    layernorm_fp16: bool = False,
) -> Tuple[str, str]: ...
def int8(
    model: str,
    out: str,
    calib: Optional[str] = None,
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
    exclude: List[str] = ...,
    dynamic: bool = False,
    profile: Optional[str] = None,
) -> Tuple[str, str]: ...
def parity(
    model: str,
    checkpoint: Optional[str] = None,
    images: Optional[str] = None,
    max_images: int = 8,
    random: int = 2,
    threshold: float = 1e-4,
    size: int = 256,
    ort_library: Optional[str] = None,
) -> Tuple[str, str]: ...
def evaluate(
    data: str,
    model: Optional[str] = None,
    checkpoint: Optional[str] = None,
    runtime: Optional[str] = None,
    profile: Optional[str] = None,
    threads: Optional[int] = None,
    ort_library: Optional[str] = None,
    size: Optional[int] = None,
    batch_size: int = 8,
    max_images: Optional[int] = None,
    threshold: float = 0.5,
) -> Tuple[str, str]: ...
def model_info(path: str) -> str: ...
def ort_library(explicit: Optional[str] = None) -> Tuple[str, str, str]: ...
