"""The workflows' reports as dataclasses: the same reports the command line prints (``text``,
also what ``str()`` gives) and writes with ``--json`` (``to_dict()``)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

__all__ = [
    "ExportReport",
    "Fp16Report",
    "Int8Report",
    "KeptNode",
    "ParityReport",
    "RuntimeParity",
    "IsicEvalReport",
    "SynapseEvalReport",
    "OrganMetrics",
]


@dataclass(frozen=True)
class _Report:
    def __str__(self) -> str:
        return getattr(self, "text", "")

    def to_dict(self) -> Dict[str, Any]:
        """The report as the JSON the command line writes."""
        d = dataclasses.asdict(self)
        d.pop("text", None)
        return d


@dataclass(frozen=True)
class ExportReport(_Report):
    """What ``vmunet.export`` wrote (``vmunet export``)."""

    path: str
    opset: int
    scan: str
    size: Optional[int]
    channels: int
    nodes: int
    bytes: int
    preprocessing: str
    text: str = field(repr=False, default="")

    @classmethod
    def _from(cls, text: str, data: str) -> "ExportReport":
        return cls(text=text, **json.loads(data))


@dataclass(frozen=True)
class KeptNode:
    """A node left in higher precision, and why."""

    node: str
    reason: str


@dataclass(frozen=True)
class Fp16Report(_Report):
    """What ``vmunet.compress.fp16`` did (``vmunet compress fp16 --json``)."""

    model: str
    output: str
    bytes: int
    half_nodes: int
    casts: int
    half_initializers: int
    range_check: str
    kept_fp32: List[KeptNode]
    text: str = field(repr=False, default="")

    @classmethod
    def _from(cls, text: str, data: str) -> "Fp16Report":
        d = json.loads(data)
        d["kept_fp32"] = [KeptNode(**k) for k in d["kept_fp32"]]
        return cls(text=text, **d)


@dataclass(frozen=True)
class Int8Report(_Report):
    """What ``vmunet.compress.int8`` did (``vmunet compress int8 --json``)."""

    model: str
    output: str
    bytes: int
    format: str
    method: str
    calibration: str
    quantized: List[str]
    kept_float: List[KeptNode]
    text: str = field(repr=False, default="")

    @classmethod
    def _from(cls, text: str, data: str) -> "Int8Report":
        d = json.loads(data)
        d["kept_float"] = [KeptNode(**k) for k in d["kept_float"]]
        return cls(text=text, **d)


@dataclass(frozen=True)
class RuntimeParity:
    """One runtime against the reference."""

    runtime: str
    ran: bool
    error: Optional[str]
    max_abs_diff: float
    mean_abs_diff: float
    min_mask_agreement: float
    min_dice: Optional[float]
    passed: bool


@dataclass(frozen=True)
class ParityReport(_Report):
    """``vmunet.parity``: every runtime on the model against the reference (``vmunet
    parity --json``). ``passed``: at least one runtime ran and every one that ran is within
    ``threshold``."""

    model: str
    reference: str
    threshold: float
    inputs: List[str]
    runtimes: List[RuntimeParity]
    passed: bool
    text: str = field(repr=False, default="")

    @classmethod
    def _from(cls, text: str, data: str) -> "ParityReport":
        d = json.loads(data)
        rows = []
        for r in d["runtimes"]:
            r = dict(r)
            r["passed"] = r.pop("pass")
            # JSON has no infinity: a runtime that did not run reports null.
            if r["max_abs_diff"] is None:
                r["max_abs_diff"] = float("inf")
            rows.append(RuntimeParity(**r))
        d["runtimes"] = rows
        return cls(text=text, **d)


@dataclass(frozen=True)
class IsicEvalReport(_Report):
    """``vmunet.evaluate`` on ISIC images: the paper's pooled-confusion metrics."""

    model: str
    images: int
    loss: float
    threshold: float
    miou: float
    dsc: float
    acc: float
    sen: float
    spe: float
    dataset: str = "isic"
    text: str = field(repr=False, default="")


@dataclass(frozen=True)
class OrganMetrics:
    """One organ's mean DSC and HD95 over the cases."""

    dsc: float
    hd95: float


@dataclass(frozen=True)
class SynapseEvalReport(_Report):
    """``vmunet.evaluate`` on Synapse volumes: per-organ DSC and HD95."""

    model: str
    cases: int
    dsc: float
    hd95: float
    organs: Dict[str, OrganMetrics]
    per_case: List[Dict[str, Any]]
    dataset: str = "synapse"
    text: str = field(repr=False, default="")


def eval_report(text: str, data: str):
    """The evaluation report of the dataset the JSON names."""
    d = json.loads(data)
    if d.get("dataset") == "synapse":
        d["organs"] = {k: OrganMetrics(**v) for k, v in d["organs"].items()}
        return SynapseEvalReport(text=text, **d)
    return IsicEvalReport(text=text, **d)
