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


def unit_graph(cargo, args):
    env = dict(os.environ, RUSTC_BOOTSTRAP="1")
    out = subprocess.run(
        [cargo, "build", *args, "--unit-graph", "-Z", "unstable-options"],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    ).stdout
    return json.loads(out)["units"]


def name_version(unit):
    pkg = unit["pkg_id"]
    # "registry+https://...#name@1.2.3" or "path+file:///...#0.1.0" (name from the path)
    name, _, version = pkg.rpartition("#")[2].rpartition("@")
    if not name:
        name = pkg.split("#")[0].rstrip("/").rsplit("/", 1)[-1]
    return name, version


def units(graph):
    seen = {}
    for unit in graph:
        name, version = name_version(unit)
        key = (name, version, unit["mode"], unit["target"]["kind"][0], unit["platform"] or "host")
        seen.setdefault(key, set()).add(tuple(sorted(unit["features"])))
    return seen


def identities(graph):
    """What decides whether cargo can reuse a unit: its package, mode, target kind, features,
    optimisation level and, recursively, the same of everything it depends on. (Feature sets
    alone miss a crate that both builds compile with equal features but over different
    dependencies: the full build often has two variants of a crate, for build scripts and for
    code, and the other build can pick one's features over the other's dependencies.)"""
    memo = {}

    def ident(i):
        if i not in memo:
            u = graph[i]
            deps = tuple(sorted(ident(d["index"]) for d in u["dependencies"]))
            memo[i] = hash((u["pkg_id"].rpartition("#")[2], u["mode"], u["target"]["kind"][0],
                            tuple(sorted(u["features"])), u["profile"]["opt_level"],
                            u.get("platform"), deps))
        return memo[i]

    return [ident(i) for i in range(len(graph))]


def why(other, oid, full, fid, a, b, depth=0):
    """The first feature difference below unit `a` of the other build against unit `b` of the
    full build (same package), as lines."""
    ua, ub = other[a], full[b]
    if sorted(ua["features"]) != sorted(ub["features"]):
        return [f"{'  ' * depth}{'/'.join(name_version(ua))}: {sorted(ua['features'])} here, "
                f"{sorted(ub['features'])} in the full build"]
    by_name = {(name_version(full[d["index"]]), full[d["index"]]["target"]["kind"][0]): d["index"]
               for d in ub["dependencies"]}
    for d in ua["dependencies"]:
        x = d["index"]
        key = (name_version(other[x]), other[x]["target"]["kind"][0])
        if key not in by_name:
            return [f"{'  ' * depth}{'/'.join(key[0])}: a dependency only here"]
        if oid[x] != fid[by_name[key]]:
            return [f"{'  ' * depth}{'/'.join(key[0])} ->"] + why(other, oid, full, fid, x, by_name[key], depth + 1)
    return []


def main():
    cargo, deploy = sys.argv[1], sys.argv[2]
    full_graph = unit_graph(cargo, ["--workspace", "--all-targets"])
    full = units(full_graph)
    python = deploy == "--python"
    if deploy == "--kernel":
        # burn and CubeCL are compiled with their GPU features there: expected to differ.
        what = "kernel test build"
        allowed = re.compile(r"^(vmunet-.*|burn.*|cubecl.*)$")
        args = ["-p", "vmunet-scan", "--features", "wgpu", "--test", "cube_kernel"]
    elif python:
        what = "Python test wheel"
        allowed = re.compile(r"^vmunet-python$")
        args = ["-p", "vmunet-python"]
    else:
        what = "deployment build"
        allowed = ALLOWED
        args = ["-p", "vmunet-cli", "--no-default-features", "--features", deploy]
    dep_graph = unit_graph(cargo, args)
    dep = units(dep_graph)
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
    # Whole units: equal features over different dependencies recompile too.
    fid, oid = identities(full_graph), identities(dep_graph)
    known = set(fid)
    for i, u in enumerate(dep_graph):
        name = name_version(u)[0]
        if allowed.match(name) or oid[i] in known:
            continue
        if any(oid[d["index"]] not in known for d in u["dependencies"]):
            continue  # not a root: something below it differs and is reported
        same = [j for j, f in enumerate(full_graph)
                if f["pkg_id"] == u["pkg_id"] and f["mode"] == u["mode"]
                and f["target"]["kind"] == u["target"]["kind"]]
        if not same:
            continue  # a crate only this build has: compiled here whatever the features
        # The closest variant: one with the same features (the difference is below) first.
        reasons = min((why(dep_graph, oid, full_graph, fid, i, j) for j in same),
                      key=lambda r: (bool(r) and "here," in r[0], len(r)), default=[])
        print(f"unify-check: {'/'.join(name_version(u))} ({u['target']['kind'][0]}, {u['mode']}) is "
              f"compiled over other dependencies than in the full build:", file=sys.stderr)
        for line in reasons:
            print(f"unify-check:   {line}", file=sys.stderr)
        bad.append(((name, "", u["mode"], u["target"]["kind"][0], ""), (), []))
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
