#!/usr/bin/env python3
"""Benchmark of `vmunet serve` (make bench-serve): throughput and arrival-to-mask latency.

1. Batch: the photos are in the watched folder when the service starts (`--once`); images/s
   from the first image's arrival to the last mask (the records' times).
2. Live: the service watches an empty folder; each photo is copied in (one at a time, as a
   technician would), and the time from the end of the copy to the record on disk is measured
   from outside, next to the stage times the service records.
3. HTTP (`vmunet serve --http`): tests/load_http.py for --http-seconds each: the photos POSTed
   to /segment by 2 clients (photos/s), then 128x128 tensors to /infer in Triton's binary
   format by 4 clients (requests/s); p50 / p99 latency, 503s, errors, the server's peak memory.

With --baseline OLD_BIN (the previous build), the batch run is repeated with it in the same
run: the table gains its row, the photos/s ratio, and how many mask pixels agree between the
two builds (per photo, the lowest reported).

usage: bench_serve.py BIN MODEL PHOTOS_DIR [--runtime tract|ort] [--table FILE] [--http-seconds T]
                      [--baseline OLD_BIN]
"""

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time


def records(out):
    recs = []
    for n in sorted(os.listdir(out)):
        if n.endswith(".json") and n not in ("status.json",):
            with open(os.path.join(out, n)) as f:
                recs.append(json.load(f))
    return recs


def ts(s):
    # 2026-12-02T10:11:12.345Z -> seconds (same day suffices for differences)
    t = s.split("T")[1].rstrip("Z")
    h, m, sec = t.split(":")
    return int(h) * 3600 + int(m) * 60 + float(sec)


def http_load(a, photos):
    """`vmunet serve --http` under tests/load_http.py: /segment with the photos, then /infer."""
    import re
    proc = subprocess.Popen([a.bin, "serve", "--http", "127.0.0.1:0", "--model", a.model, "--runtime", a.runtime],
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    try:
        addr = None
        deadline = time.time() + 120
        while addr is None:
            line = proc.stderr.readline()
            assert line and time.time() < deadline, "the server did not start"
            m = re.match(r"listening on http://(\S+)", line)
            addr = m.group(1) if m else None
        name = os.path.splitext(os.path.basename(a.model))[0]
        load = os.path.join(os.path.dirname(os.path.abspath(__file__)), "load_http.py")
        rows = []
        photo_dir = os.path.dirname(photos[0])
        for args in (["--photos", photo_dir, "--clients", "2"], ["--infer", "--clients", "4"]):
            out = subprocess.run([sys.executable, load, addr, name, "--seconds", str(a.http_seconds),
                                  "--pid", str(proc.pid)] + args, capture_output=True, text=True)
            assert out.returncode == 0, out.stdout + out.stderr
            rows.append(json.loads(out.stdout))
        return rows
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)


def mask_agreement(out_a, out_b, recs):
    """(lowest per-photo agreement, its photo, agreement over all pixels) of the masks of two
    runs, read with Pillow."""
    import numpy as np
    from PIL import Image
    worst, worst_name, same, total = 1.0, "", 0, 0
    for r in recs:
        a = np.asarray(Image.open(os.path.join(out_a, r["mask"])))
        b = np.asarray(Image.open(os.path.join(out_b, r["mask"])))
        assert a.shape == b.shape, (r["mask"], a.shape, b.shape)
        eq = int((a == b).sum())
        same, total = same + eq, total + a.size
        if eq / a.size < worst:
            worst, worst_name = eq / a.size, r["image"]
    return worst, worst_name, same / total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bin")
    ap.add_argument("model")
    ap.add_argument("photos")
    ap.add_argument("--runtime", default="tract")
    ap.add_argument("--table")
    ap.add_argument("--http-seconds", type=float, default=15)
    ap.add_argument("--baseline")
    a = ap.parse_args()
    photos = sorted(os.path.join(a.photos, p) for p in os.listdir(a.photos))
    work = tempfile.mkdtemp(prefix="bench-serve.")
    base = [a.bin, "serve", "--model", a.model, "--runtime", a.runtime]
    rows = []
    try:
        # 1. Batch (and the previous build's batch, for the ratio and the mask agreement).
        def batch(binary, tag):
            inp, out = os.path.join(work, tag + "-in"), os.path.join(work, tag + "-out")
            os.makedirs(inp)
            for p in photos:
                shutil.copy(p, inp)
            cmd = [binary] + base[1:] + ["--watch", inp, "--out", out, "--once", "--settle-ms", "0"]
            t = time.time()
            subprocess.run(cmd, check=True, stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
            wall = time.time() - t
            recs = records(out)
            assert len(recs) == len(photos), f"{len(recs)} records for {len(photos)} photos"
            first = min(ts(r["arrived"]) for r in recs)
            last = max(ts(r["finished"]) for r in recs)
            return len(recs) / (last - first), wall, recs, out

        compare = None
        if a.baseline:
            ips_old, wall_old, recs_old, out_old = batch(a.baseline, "prev")
        ips, wall, recs, out = batch(a.bin, "b")
        if a.baseline:
            rows.append(("batch, previous build", len(recs_old), ips_old, wall_old, recs_old, None))
            compare = (ips / ips_old, mask_agreement(out_old, out, recs))
        rows.append(("batch", len(recs), ips, wall, recs, None))

        # 2. Live.
        inp, out = os.path.join(work, "l-in"), os.path.join(work, "l-out")
        os.makedirs(inp)
        proc = subprocess.Popen(base + ["--watch", inp, "--out", out],
                                stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        deadline = time.time() + 120
        while True:
            try:
                with open(os.path.join(out, "status.json")) as f:
                    if json.load(f).get("ready"):
                        break
            except (OSError, ValueError):
                pass
            assert time.time() < deadline, "service not ready"
            time.sleep(0.02)
        outside = []
        for p in photos:
            stem = os.path.splitext(os.path.basename(p))[0]
            shutil.copyfile(p, os.path.join(inp, os.path.basename(p)))
            t0 = time.time()
            rec = os.path.join(out, stem + ".json")
            while not os.path.exists(rec):
                assert time.time() - t0 < 120, f"no record for {p}"
                time.sleep(0.002)
            outside.append(time.time() - t0)
            time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
        recs = records(out)
        rows.append(("live", len(recs), None, None, recs, outside))

        # 3. HTTP.
        http_rows = http_load(a, photos) if a.http_seconds > 0 else []
    finally:
        shutil.rmtree(work, ignore_errors=True)

    def med(xs):
        return statistics.median(xs) * 1e3

    lines = [
        f"vmunet serve, {os.path.basename(a.model)}, {a.runtime}, {len(photos)} photos "
        f"({min(r['width'] for r in rows[0][4])}x{min(r['height'] for r in rows[0][4])} to "
        f"{max(r['width'] for r in rows[0][4])}x{max(r['height'] for r in rows[0][4])}), "
        f"{os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d')}",
        "",
        "| mode | images | images/s | arrival to mask p50 ms | max ms | copy end to record p50 ms | read ms | decode ms | preprocess ms | model ms | postprocess ms | write ms |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for mode, n, ips, wall, recs, outside in rows:
        tm = [r["timings"] for r in recs]
        lat = [t["latency"] for t in tm]
        lines.append(
            f"| {mode} | {n} | {f'{ips:.2f}' if ips else '-'} | {med(lat):.0f} | {max(lat) * 1e3:.0f} | "
            f"{f'{med(outside):.0f}' if outside else '-'} | "
            + " | ".join(f"{med([t[k] for t in tm]):.0f}"
                         for k in ("read", "decode", "preprocess", "inference", "postprocess", "write"))
            + " |"
        )
    if compare:
        ratio, (worst, name, total) = compare
        lines.append("")
        lines.append(f"photos/s against the previous build ({os.path.basename(a.baseline)}), same run: "
                     f"**{ratio:.2f}x**; masks agree with it on {total * 100:.3f} % of all pixels, "
                     f"at least {worst * 100:.3f} % per photo ({name}).")
    lines.append("")
    lines.append("batch: photos present at start (latency includes the queue); live: copied in one "
                 "at a time, 0.3 s apart; stage columns are medians of the service's records.")
    if http_rows:
        lines += ["", "| HTTP endpoint | clients | seconds | answered | per s | p50 ms | p99 ms | 503s | errors | server peak RSS MiB |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for r in http_rows:
            lines.append(f"| {r['endpoint']} | {r['clients']} | {r['seconds']} | {r['answered_200']} | "
                         f"{r['throughput_per_s']} | {r['p50_ms']} | {r['p99_ms']} | {r['answered_503']} | "
                         f"{r['errors']} | {r['hwm_mib']} |")
    text = "\n".join(lines)
    print(text)
    if a.table:
        with open(a.table, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    sys.exit(main())
