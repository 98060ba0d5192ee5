#!/usr/bin/env python3
"""Fails when a crate that both the full workspace build and the deployment build compile gets
different features in the deployment build than in any unit of the full build: one such crate
low in the tree recompiles everything above it (tract, image, ort: ~7 minutes cold) instead of
reusing the full build's artifacts in the shared target folder. crates/vmunet-workspace-hack asks
for the full build's features; add the crate named here to it ([dependencies] for code the
binary runs, [build-dependencies] for build scripts and proc-macros).

It reads cargo's unit graph (`--unit-graph`, unstable: RUSTC_BOOTSTRAP=1 lets stable cargo print
it; nothing is built), the list of what cargo would compile with which features, because
`cargo tree` merges a crate's build-script and library uses into one line and hides exactly the
differences that matter here.

The Python test wheel (`make test-python`: maturin builds `-p vmunet-python` at the dev
profile) must reuse the full build the same way, our own crates included (a difference there
recompiles them and everything of ours above): `--python` checks that build instead.

`--kernel` checks the kernel test's build (`make test-kernel`: `-p vmunet-scan --features
wgpu`, which depends on the hack through its GPU features): everything below burn and CubeCL
(serde, syn, regex, ...) must be the full build's.

usage: mk/unify-check.py CARGO DEPLOY_FEATURES
       mk/unify-check.py CARGO --python
       mk/unify-check.py CARGO --kernel
"""
import json
import os
import re
import subprocess
import sys

# Decided per build on purpose, and cheap to recompile (only our crates sit above them): our own
# crates, zip (`.npz` reading in vmunet-data) and ONNX Runtime's providers (the deployment build's
# choice).
ALLOWED = re.compile(r"^(vmunet-.*|zip|ort|ort-sys)$")


def units(cargo, args):
    env = dict(os.environ, RUSTC_BOOTSTRAP="1")
    out = subprocess.run(
        [cargo, "build", *args, "--unit-graph", "-Z", "unstable-options"],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    ).stdout
    seen = {}
    for unit in json.loads(out)["units"]:
        pkg = unit["pkg_id"]
        # "registry+https://...#name@1.2.3" or "path+file:///...#0.1.0" (name from the path)
        name, _, version = pkg.rpartition("#")[2].rpartition("@")
        if not name:
            name = pkg.split("#")[0].rstrip("/").rsplit("/", 1)[-1]
        key = (name, version, unit["mode"], unit["target"]["kind"][0], unit["platform"] or "host")
        seen.setdefault(key, set()).add(tuple(sorted(unit["features"])))
    return seen


def main():
    cargo, deploy = sys.argv[1], sys.argv[2]
    full = units(cargo, ["--workspace", "--all-targets"])
    python = deploy == "--python"
    if deploy == "--kernel":
        # burn and CubeCL are compiled with their GPU features there: expected to differ.
        what = "kernel test build"
        allowed = re.compile(r"^(vmunet-.*|burn.*|cubecl.*)$")
        dep = units(cargo, ["-p", "vmunet-scan", "--features", "wgpu", "--test", "cube_kernel"])
    elif python:
        what = "Python test wheel"
        allowed = re.compile(r"^vmunet-python$")
        dep = units(cargo, ["-p", "vmunet-python"])
    else:
        what = "deployment build"
        allowed = ALLOWED
        dep = units(cargo, ["-p", "vmunet-cli", "--no-default-features", "--features", deploy])
    bad = []
    for key, feature_sets in sorted(dep.items()):
        if allowed.match(key[0]) or key not in full:
            continue
        for feats in sorted(feature_sets):
            if feats not in full[key]:
                bad.append((key, feats, sorted(full[key])))
    for (name, version, mode, kind, _), feats, want in bad:
        print(
            f"unify-check: {name} {version} ({kind}, {mode}): {what} {list(feats)}, "
            f"full build {[list(w) for w in want]}",
            file=sys.stderr,
        )
    if bad:
        print(
            "unify-check: add these features to crates/vmunet-workspace-hack/Cargo.toml (our own "
            f"crates: to crates/vmunet-python/Cargo.toml), or the {what} recompiles everything above them",
            file=sys.stderr,
        )
        return 1
    print(f"unify-check: the {what}'s {sum(map(len, dep.values()))} units reuse the full build's features")
    return 0


if __name__ == "__main__":
    sys.exit(main())
