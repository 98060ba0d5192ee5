#!/usr/bin/env python3
"""Times the official PyTorch VM-UNet on this machine, for `vmunet bench --peer` (`make bench-peer`).

The user supplies the official code (a checkout of GitHub JCruan519/VM-UNet) and a Python with
torch, timm and einops; this script ships none of their code. It builds the paper configuration
(encoder depths [2,2,2,2], decoder [2,2,2,1], dims 96..768, one class) with random weights (the
timing does not depend on them), float32, eval mode, and times one forward at 1x3xSxS:

- `forward_s`: the official code as a CPU user can run it. The official SS2D calls mamba_ssm's
  CUDA `selective_scan_fn`, which does not run on a CPU; here it runs mamba_ssm's own
  pure-PyTorch reference algorithm (written out below: the same loop over the sequence);
- `no_scan_s`: the same forward with the scan replaced by a stand-in of the same shapes
  (`u * D`): what everything except the scan costs PyTorch.

Writes a JSON that `vmunet bench --peer FILE` reads, so every ratio it prints comes from one run
on one machine.

Usage: python tests/bench_peer.py --official DIR --out FILE [--threads N] [--runs N] [--size S]
       [--reference-runs N] [--no-reference]
"""

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
import types


def fail(msg):
    print(f"bench_peer: {msg}", file=sys.stderr)
    sys.exit(2)


def reference_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                   return_last_state=False):
    """mamba_ssm's reference selective scan (float32, loop over the sequence).

    u, delta (b, d, l); A (d, n); B, C (b, g, n, l) with d divisible by g; D (d).
    """
    import torch
    import torch.nn.functional as F

    dtype_in = u.dtype
    u, delta = u.float(), delta.float()
    if delta_bias is not None:
        delta = delta + delta_bias[..., None].float()
    if delta_softplus:
        delta = F.softplus(delta)
    b, d, l = u.shape
    g = B.shape[1]
    Bf = B.float().repeat_interleave(d // g, dim=1)  # (b, d, n, l)
    Cf = C.float().repeat_interleave(d // g, dim=1)
    delta_a = torch.exp(torch.einsum("bdl,dn->bdln", delta, A.float()))
    delta_b_u = torch.einsum("bdl,bdnl,bdl->bdln", delta, Bf, u)
    x = u.new_zeros((b, d, A.shape[1]))
    ys = []
    for i in range(l):
        x = delta_a[:, :, i] * x + delta_b_u[:, :, i]
        ys.append(torch.einsum("bdn,bdn->bd", x, Cf[:, :, :, i]))
    y = torch.stack(ys, dim=2)
    out = y if D is None else y + u * D.float()[:, None]
    if z is not None:
        out = out * F.silu(z)
    out = out.to(dtype_in)
    return (out, x) if return_last_state else out


def no_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
            return_last_state=False):
    """A stand-in with the scan's shapes and dtype and almost no work: `u * D`."""
    out = u.float() * D.float()[:, None] if D is not None else u.float().clone()
    return (out, None) if return_last_state else out


def install_scan_module():
    """Makes `from mamba_ssm.ops.selective_scan_interface import selective_scan_fn` resolve to
    the reference algorithm (the CUDA extension cannot be built or run on a CPU)."""
    names = ["mamba_ssm", "mamba_ssm.ops", "mamba_ssm.ops.selective_scan_interface"]
    mods = [types.ModuleType(n) for n in names]
    mods[2].selective_scan_fn = reference_scan
    mods[2].selective_scan_ref = reference_scan
    mods[0].ops, mods[1].selective_scan_interface = mods[1], mods[2]
    for n, m in zip(names, mods):
        sys.modules[n] = m


def median_time(fn, runs):
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), times


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--official", required=True, help="checkout of GitHub JCruan519/VM-UNet")
    ap.add_argument("--out", required=True, help="JSON for `vmunet bench --peer`")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--runs", type=int, default=5, help="timed runs without the scan")
    ap.add_argument("--reference-runs", type=int, default=1,
                    help="timed runs with the reference scan (each takes seconds)")
    ap.add_argument("--no-reference", action="store_true",
                    help="skip the forward with the reference scan")
    ap.add_argument("--size", type=int, default=256)
    a = ap.parse_args()

    model_py = os.path.join(a.official, "models", "vmunet", "vmunet.py")
    if not os.path.isfile(model_py):
        fail(f"{a.official} is not a checkout of the official VM-UNet: no models/vmunet/vmunet.py")
    try:
        import torch
    except ImportError as e:
        fail(f"this Python ({sys.executable}) has no torch: {e}")
    install_scan_module()
    sys.path.insert(0, os.path.abspath(a.official))
    try:
        from models.vmunet.vmunet import VMUNet
    except Exception as e:  # noqa: BLE001 - report what the official code needs
        fail(f"cannot import the official model from {a.official}: {e!r} "
             "(it needs torch, timm and einops)")

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = VMUNet(input_channels=3, num_classes=1, depths=[2, 2, 2, 2],
                   depths_decoder=[2, 2, 2, 1], drop_path_rate=0.2, load_ckpt_path=None).eval()
    params = sum(p.numel() for p in model.parameters())
    x = torch.rand(1, 3, a.size, a.size)
    # The official SS2D reads the module-level `selective_scan_fn` on every call
    # (forward_corev0 assigns it to self.selective_scan): swap that global.
    vmamba = sys.modules.get("models.vmunet.vmamba")
    if vmamba is None or not hasattr(vmamba, "selective_scan_fn"):
        fail("the official models/vmunet/vmamba.py has no selective_scan_fn to time with and without")

    def set_scan(fn):
        vmamba.selective_scan_fn = fn

    result = {
        "torch": torch.__version__.split("+")[0],
        "threads": a.threads,
        "shape": [1, 3, a.size, a.size],
        "parameters": params,
        "machine": f"{cpu_name()}, {os.cpu_count()} CPUs",
        "date": datetime.date.today().isoformat(),
        "forward_s": None,
        "forward_runs_s": [],
    }
    with torch.inference_mode():
        set_scan(no_scan)
        model(x)  # warm-up
        result["no_scan_s"], result["no_scan_runs_s"] = median_time(lambda: model(x), a.runs)
        print(f"official PyTorch {result['torch']}, {params} parameters, {a.threads} threads: "
              f"without the scan {result['no_scan_s']:.3f} s", flush=True)
        if not a.no_reference:
            set_scan(reference_scan)
            result["forward_s"], result["forward_runs_s"] = median_time(
                lambda: model(x), max(1, a.reference_runs))
            print(f"  with the reference scan {result['forward_s']:.2f} s", flush=True)
    tmp = a.out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(result, f, indent=1)
    os.replace(tmp, a.out)


if __name__ == "__main__":
    main()
