"""Ray Data: the 300 ISIC 2017 validation images segmented on a local Ray cluster by
`vmunet.ray.SegmentBatch` (two workers), every mask and overlay byte-equal to what `vmunet
infer` writes for the same images; both timed in the same run (the table is printed and
written to $VMUNET_RAY_REPORT when set)."""

from __future__ import annotations

import os
import time

import pytest

ray = pytest.importorskip("ray")

import vmunet  # noqa: E402
import vmunet.ray  # noqa: E402


def test_ray_data_segments_the_validation_set(isic, cli, reference_onnx, tmp_path):
    images = isic / "val" / "images"
    names = sorted(p.name for p in images.iterdir())
    assert len(names) == 300

    t = time.perf_counter()
    cli("infer", "--model", reference_onnx, "--out", tmp_path / "cli", images)
    cli_s = time.perf_counter() - t

    t0 = time.perf_counter()
    # Logical CPUs: two for the segmenting workers, two for the read tasks feeding them (with
    # two, the workers hold both and the reads starve).
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
    try:
        t = time.perf_counter()
        ds = ray.data.read_images(str(images), include_paths=True, mode="RGB")
        out = ds.map_batches(
            vmunet.ray.SegmentBatch,
            fn_constructor_kwargs={"model": str(reference_onnx), "out": str(tmp_path / "ray")},
            concurrency=2,
            batch_size=16,
        ).materialize()
        rows = out.count()
        ray_s = time.perf_counter() - t
    finally:
        ray.shutdown()
    total_s = time.perf_counter() - t0

    assert rows == 300
    for n in names:
        stem = os.path.splitext(n)[0]
        for kind in ("mask", "overlay"):
            f = f"{stem}_{kind}.png"
            assert (tmp_path / "ray" / f).read_bytes() == (tmp_path / "cli" / f).read_bytes(), f
    table = (
        "| path | images | seconds | images/s |\n|---|---|---|---|\n"
        f"| vmunet infer (one process) | 300 | {cli_s:.1f} | {300 / cli_s:.1f} |\n"
        f"| Ray Data, 2 workers (pipeline) | 300 | {ray_s:.1f} | {300 / ray_s:.1f} |\n"
        f"| Ray Data, with ray.init/shutdown | 300 | {total_s:.1f} | {300 / total_s:.1f} |\n"
    )
    print("\n" + table)
    report = os.environ.get("VMUNET_RAY_REPORT")
    if report:
        with open(report, "w") as f:
            f.write(table)
