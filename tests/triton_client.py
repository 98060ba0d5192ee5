#!/usr/bin/env python3
"""A real Open Inference Protocol client no one here wrote (tritonclient.http, PyPI) against
`vmunet serve --http`: server and model metadata, liveness and readiness, `infer` with binary
tensors (tritonclient's default) and with JSON, from several threads at once.

Writes into OUT: input.npy (the batch sent), binary.npy and json.npy (the logits each way) and
threads.json (per thread: max |logits - logits of the same input sent alone|). The Rust test
compares the logits with `vmunet forward` on input.npy.

usage: triton_client.py HOST:PORT MODEL OUT
Exit 3 (and a SKIP line) when tritonclient.http is not installed.
"""

import json
import os
import sys
import threading

try:
    import numpy as np
    import tritonclient.http as httpclient
except ImportError as e:  # pragma: no cover
    print(f"SKIP: tritonclient[http] is not installed ({e}); run through `make test`")
    sys.exit(3)


def infer(client, model, meta, x, binary):
    inp = httpclient.InferInput(meta["inputs"][0]["name"], list(x.shape), "FP32")
    inp.set_data_from_numpy(x, binary_data=binary)
    out = httpclient.InferRequestedOutput(meta["outputs"][0]["name"], binary_data=binary)
    r = client.infer(model, [inp], outputs=[out], request_id="vmunet-test")
    assert r.get_response()["id"] == "vmunet-test", r.get_response()
    return r.as_numpy(meta["outputs"][0]["name"])


def main():
    url, model, out = sys.argv[1:4]
    os.makedirs(out, exist_ok=True)
    client = httpclient.InferenceServerClient(url=url, concurrency=4)
    assert client.is_server_live(), "not live"
    assert client.is_server_ready(), "not ready"
    smeta = client.get_server_metadata()
    assert "binary_tensor_data" in smeta["extensions"], smeta
    assert client.is_model_ready(model), "model not ready"
    meta = client.get_model_metadata(model)
    shape = meta["inputs"][0]["shape"]
    _, c, h, w = shape
    rng = np.random.default_rng(2026)
    x = (rng.random((2, c, h, w), dtype=np.float32) * 255.0).astype(np.float32)
    np.save(os.path.join(out, "input.npy"), x)
    yb = infer(client, model, meta, x, True)
    yj = infer(client, model, meta, x, False)
    np.save(os.path.join(out, "binary.npy"), yb.astype(np.float32))
    np.save(os.path.join(out, "json.npy"), yj.astype(np.float32))

    # Several client threads at once, each its own input, each checked against that input
    # sent alone (batching must not mix samples).
    alone = {}
    inputs = {t: (rng.random((1, c, h, w), dtype=np.float32) * 255.0).astype(np.float32) for t in range(6)}
    for t, xi in inputs.items():
        alone[t] = infer(client, model, meta, xi, True)
    diffs = {}

    def worker(t):
        cl = httpclient.InferenceServerClient(url=url)
        worst = 0.0
        for _ in range(3):
            y = infer(cl, model, meta, inputs[t], t % 2 == 0)
            worst = max(worst, float(np.abs(y - alone[t]).max()))
        diffs[t] = worst

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(6)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(diffs) == 6, diffs
    with open(os.path.join(out, "threads.json"), "w") as f:
        json.dump({str(k): v for k, v in diffs.items()}, f)

    # A protocol error reaches the client as one (unknown model).
    try:
        client.get_model_metadata("no-such-model")
        raise AssertionError("unknown model accepted")
    except httpclient.InferenceServerException as e:
        assert "unknown model" in str(e), e
    print(f"tritonclient {url} {model}: metadata, readiness, binary and JSON infer, 6 threads: ok")


if __name__ == "__main__":
    main()
