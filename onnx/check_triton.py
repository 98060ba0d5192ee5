#!/usr/bin/env python3
"""Check a Triton model repository written by `vmunet bundle --triton`.

For every model folder in REPO: parse config.pbtxt with Triton's own model-configuration schema
(model_config_pb2 from the tritonclient package, protobuf text format; unknown fields or bad
values are errors), then open 1/model.onnx in stock ONNX Runtime (registering the custom-op
library that `model_operations` names, mapped from the server mount to REPO) and check that
the configuration's inputs and outputs match the session's: names, element types and
dimensions (the batch dimension is Triton's when max_batch_size > 0). Finally run a batch of
random inputs of the configured shape and check the output shape.

usage: check_triton.py REPO [--mount /models]
"""

import argparse
import importlib.util
import os
import sys

import numpy as np
import onnxruntime as ort
from google.protobuf import text_format


def model_config_pb2():
    # tritonclient.grpc's __init__ imports grpcio; the schema module itself needs only protobuf.
    spec = importlib.util.find_spec("tritonclient")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("tritonclient is not installed (make venv installs it)")
    path = os.path.join(list(spec.submodule_search_locations)[0], "grpc", "model_config_pb2.py")
    s = importlib.util.spec_from_file_location("model_config_pb2", path)
    m = importlib.util.module_from_spec(s)
    s.loader.exec_module(m)
    return m


TYPES = {"TYPE_FP32": "tensor(float)", "TYPE_FP16": "tensor(float16)"}
NP = {"TYPE_FP32": np.float32, "TYPE_FP16": np.float16}


def check(pb2, repo, name, mount):
    folder = os.path.join(repo, name)
    text = open(os.path.join(folder, "config.pbtxt")).read()
    cfg = text_format.Parse(text, pb2.ModelConfig())
    assert cfg.name == name, f"config name {cfg.name!r} != folder {name!r}"
    assert cfg.backend == "onnxruntime" or cfg.platform == "onnxruntime_onnx", cfg.backend
    model = os.path.join(folder, "1", "model.onnx")
    assert os.path.isfile(model), f"{model} missing"
    so = ort.SessionOptions()
    libs = list(cfg.model_operations.op_library_filename)
    for lib in libs:
        assert lib.startswith(mount.rstrip("/") + "/"), f"{lib} is not under the mount {mount}"
        local = os.path.join(repo, lib[len(mount.rstrip("/")) + 1:])
        assert os.path.isfile(local), f"model_operations names {lib}, but {local} is missing"
        so.register_custom_ops_library(local)
    sess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    batch = cfg.max_batch_size

    def match(kind, declared, actual):
        assert len(declared) == len(actual), f"{kind}: {len(declared)} in config, {len(actual)} in model"
        for d, a in zip(declared, actual):
            assert d.name == a.name, f"{kind} name {d.name!r} != model's {a.name!r}"
            dtype = pb2.DataType.Name(d.data_type)
            assert TYPES.get(dtype) == a.type, f"{kind} {d.name}: {dtype} vs {a.type}"
            shape = list(a.shape)
            if batch > 0:
                assert not isinstance(shape[0], int), f"{kind} {d.name}: batch is fixed in the model"
                shape = shape[1:]
            want = [s if isinstance(s, int) else -1 for s in shape]
            assert list(d.dims) == want, f"{kind} {d.name}: dims {list(d.dims)} vs model {want}"

    match("input", cfg.input, sess.get_inputs())
    match("output", cfg.output, sess.get_outputs())
    n = min(max(batch, 1), 2)
    inp = cfg.input[0]
    dims = [d if d > 0 else 64 for d in inp.dims]
    shape = ([n] + dims) if batch > 0 else dims
    x = np.random.default_rng(0).random(shape).astype(NP[pb2.DataType.Name(inp.data_type)])
    y = sess.run(None, {inp.name: x})[0]
    out_dims = list(cfg.output[0].dims)
    want = ([n] + out_dims) if batch > 0 else out_dims
    assert all(w in (-1, g) for w, g in zip(want, y.shape)) and len(want) == y.ndim, \
        f"output shape {y.shape} does not fit {want}"
    accel = [a.name for a in cfg.optimization.execution_accelerators.gpu_execution_accelerator]
    print(f"{name}: config.pbtxt parses with Triton's schema; max_batch_size {batch}; "
          f"inputs/outputs match ONNX Runtime {ort.__version__}; batch of {n} ran -> {list(y.shape)}; "
          f"accelerators {accel or 'none'}; custom-op libraries {len(libs)}; OK")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("repo")
    ap.add_argument("--mount", default="/models")
    a = ap.parse_args()
    pb2 = model_config_pb2()
    names = sorted(d for d in os.listdir(a.repo)
                   if os.path.isdir(os.path.join(a.repo, d)) and not d.startswith("."))
    if not names:
        sys.exit(f"{a.repo}: no model folders")
    for name in names:
        check(pb2, a.repo, name, a.mount)


if __name__ == "__main__":
    main()
