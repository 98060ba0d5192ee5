#!/usr/bin/env python3
"""Load run against `vmunet serve --http` (loopback only, bounded): N concurrent clients for T
seconds, each sending photos to /segment (or tensors to /infer) over a kept-alive connection.

Reports throughput, p50/p99 latency of the answered requests, every status seen (anything but
200 and 503 is an error), and the server's resident memory (VmRSS sampled every 0.2 s, VmHWM at
the end) from /proc when its PID is given. Exit 1 on any error.

usage: load_http.py HOST:PORT MODEL --photos DIR | --infer  [--clients N] [--seconds T]
                    [--pid PID] [--json FILE]
"""

import argparse
import http.client
import json
import os
import statistics
import struct
import sys
import threading
import time


def rss_kib(pid, field="VmRSS"):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def infer_body(model_meta):
    _, c, h, w = model_meta["inputs"][0]["shape"]
    n = c * h * w
    data = struct.pack(f"<{n}f", *([100.0] * (n // 2) + [10.0] * (n - n // 2)))
    header = json.dumps({
        "inputs": [{"name": model_meta["inputs"][0]["name"], "shape": [1, c, h, w], "datatype": "FP32",
                    "parameters": {"binary_data_size": len(data)}}],
        "parameters": {"binary_data_output": True},
    }).encode()
    return header + data, {"Inference-Header-Content-Length": str(len(header)),
                           "Content-Type": "application/octet-stream"}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("addr")
    ap.add_argument("model")
    ap.add_argument("--photos")
    ap.add_argument("--infer", action="store_true")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--pid", type=int)
    ap.add_argument("--json")
    a = ap.parse_args()
    host, port = a.addr.rsplit(":", 1)

    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    conn.request("GET", f"/v2/models/{a.model}")
    meta = json.loads(conn.getresponse().read())
    if a.infer:
        bodies = [infer_body(meta)]
        path = f"/v2/models/{a.model}/infer"
    else:
        files = sorted(os.listdir(a.photos))
        bodies = []
        for name in files:
            with open(os.path.join(a.photos, name), "rb") as f:
                bodies.append((f.read(), {"X-Image-Name": name, "Content-Type": "application/octet-stream"}))
        path = f"/v2/models/{a.model}/segment"

    stop = time.time() + a.seconds
    lock = threading.Lock()
    latencies, statuses, errors = [], {}, []
    rss = []

    def client(k):
        c = http.client.HTTPConnection(host, int(port), timeout=120)
        i = k
        while time.time() < stop:
            body, headers = bodies[i % len(bodies)]
            i += 1
            t = time.time()
            try:
                c.request("POST", path, body=body, headers=headers)
                r = c.getresponse()
                r.read()
                code = r.status
            except Exception as e:  # connection dropped: an error
                with lock:
                    errors.append(repr(e))
                c.close()
                c = http.client.HTTPConnection(host, int(port), timeout=120)
                continue
            dt = time.time() - t
            with lock:
                statuses[code] = statuses.get(code, 0) + 1
                if code == 200:
                    latencies.append(dt)
                elif code != 503:
                    errors.append(f"HTTP {code}")
            if code == 503:
                time.sleep(0.05)

    def sampler():
        while time.time() < stop:
            v = rss_kib(a.pid)
            if v:
                rss.append(v)
            time.sleep(0.2)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(a.clients)]
    if a.pid:
        threads.append(threading.Thread(target=sampler))
    t0 = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.time() - t0
    latencies.sort()
    q = lambda p: latencies[min(len(latencies) - 1, int(p * len(latencies)))] if latencies else float("nan")
    out = {
        "endpoint": "infer" if a.infer else "segment",
        "clients": a.clients,
        "seconds": round(wall, 2),
        "answered_200": statuses.get(200, 0),
        "answered_503": statuses.get(503, 0),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "errors": len(errors),
        "first_errors": errors[:5],
        "throughput_per_s": round(statuses.get(200, 0) / wall, 2),
        "p50_ms": round(1000 * q(0.50), 1),
        "p99_ms": round(1000 * q(0.99), 1),
        "mean_ms": round(1000 * statistics.mean(latencies), 1) if latencies else None,
        "rss_mib_first": round(rss[0] / 1024, 1) if rss else None,
        "rss_mib_max": round(max(rss) / 1024, 1) if rss else None,
        "rss_mib_last": round(rss[-1] / 1024, 1) if rss else None,
        "hwm_mib": round((rss_kib(a.pid, "VmHWM") or 0) / 1024, 1) if a.pid else None,
    }
    print(json.dumps(out, indent=2))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=2)
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
