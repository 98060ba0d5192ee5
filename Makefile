# vmunet — every set-up step lives here; CI runs `make test` on a fresh clone.
SHELL := /bin/bash
CARGO ?= cargo
# Builds live outside the clone so a warm machine reuses them.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/vmunet/target
SHARED ?= $(abspath ../shared)
export VMUNET_SHARED ?= $(SHARED)
BIN_DEBUG := $(CARGO_TARGET_DIR)/debug/vmunet
BIN := $(CARGO_TARGET_DIR)/release/vmunet
# Every debug build of the workspace goes through this one command: the same packages, hence the
# same dependency features, so the binary, the tests and the libraries share one compilation
# (a `-p vmunet-cli` build resolves features differently and recompiles burn, tract and more).
BUILD_ALL := $(CARGO) build --workspace --all-targets
# Each phase of `make test` is timed (build/phases.tsv; .ci/run prints the table).
PHASE := $(abspath mk/phase.sh)
DEMO_OUT ?= demo-out
# Python tools used only by tests: the reference ONNX checker and ONNX Runtime.
VENV := build/venv
PYTHON ?= python3
ONNX_VERSION := 1.23.2
ORT_VERSION := 1.32.0
export VMUNET_PYTHON := $(abspath $(VENV))/bin/python
# ONNX Runtime for the `ort` runtime: the library inside the onnxruntime wheel (resolved lazily,
# after the venv exists). On a Jetson, point ORT_DYLIB_PATH at JetPack's build instead.
export ORT_DYLIB_PATH ?= $(shell ls $(abspath $(VENV))/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.* 2>/dev/null | head -n 1)

# System libraries: HDF5 (Synapse volumes) and Mesa's software Vulkan (the CubeCL scan kernel's
# tests on burn-wgpu without a GPU).
include mk/hdf5.mk
include mk/cbuild.mk
include mk/lavapipe.mk
include mk/browser.mk
include mk/clinical.mk
# The Python package: its wheels and its pytest suite.
include mk/python.mk
# The aarch64 (Jetson) cross build and its qemu tests.
X86_BIN ?= $(BIN_DEBUG)
include mk/jetson.mk

# test-jetson and jetson: mk/jetson.mk
.PHONY: all build test test-ort-matrix test-deploy lint fmt demo demo-train bench clean toolchain venv

all: build

toolchain:
	@command -v $(CARGO) >/dev/null || { echo "cargo not found: install Rust (rustup) first" >&2; exit 1; }

build: toolchain hdf5 cbuild
	$(CARGO) build --release -p vmunet-cli

$(VENV)/.ok:
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --disable-pip-version-check onnx==$(ONNX_VERSION) onnxruntime==$(ORT_VERSION) numpy
	touch $@

# tritonclient: Triton's model-configuration schema (model_config_pb2) for the `vmunet bundle
# --triton` tests, and its HTTP client (the `[http]` extra: geventhttpclient, python-rapidjson)
# as the real Open Inference Protocol client of the `vmunet serve --http` tests.
TRITONCLIENT_VERSION := 2.73.0
$(VENV)/.triton-http-ok: | $(VENV)/.ok
	$(VENV)/bin/python -m pip install -q --disable-pip-version-check "tritonclient[http]==$(TRITONCLIENT_VERSION)"
	touch $@

# Pillow: the official code's image decoder (libjpeg-turbo), the reference of the test that
# vmunet decodes JPEG photos to the same pixels (tests/cli/infer.rs).
PILLOW_VERSION := 13.0.0
$(VENV)/.pillow-ok: | $(VENV)/.ok
	$(VENV)/bin/python -m pip install -q --disable-pip-version-check pillow==$(PILLOW_VERSION)
	touch $@

venv: $(VENV)/.ok $(VENV)/.triton-http-ok $(VENV)/.pillow-ok $(VENV)/.maturin-ok

# Unit tests beside the code, fixture parity, CLI end-to-end tests (tests/: they drive the binary
# and libvmunet_ort_ops.so, which the build makes first), then the deployment build, the aarch64
# build under qemu, the CubeCL scan kernel against the host scan on burn-wgpu over lavapipe, and
# the CUDA build (no GPU here: it must compile so GPU code cannot rot unseen). Every x86 build
# shares one target folder ($(CARGO_TARGET_DIR)): the deployment, kernel and CUDA builds reuse the
# dependencies they have in common with the main build. README "Testing" has the budget.
test: toolchain
	$(PHASE) setup $(MAKE) --no-print-directory venv hdf5 cbuild lavapipe browser clinical
	$(PHASE) fmt $(CARGO) fmt --all -- --check
	@$(MAKE) --no-print-directory python-venv-start
	$(PHASE) build $(BUILD_ALL)
	$(PHASE) workspace-tests env VMUNET_BIN=$(BIN_DEBUG) $(CARGO) test --workspace --no-fail-fast
	$(MAKE) --no-print-directory test-python
	$(MAKE) --no-print-directory test-deploy
	$(MAKE) --no-print-directory test-jetson
	$(MAKE) --no-print-directory test-kernel
	$(PHASE) cuda-check $(CARGO) check -p vmunet-cli --features cuda

# The binary against the libonnxruntime.so of ONNX Runtime 1.20.1, 1.23.2 and $(ORT_VERSION) (wheels
# fetched once into build/ort/): forward matches tract within 1e-4 for every golden form, 1.19.2 is
# refused with one clear message, and the library is found without ORT_DYLIB_PATH.
# VMUNET_BIN picks the binary (default: the debug build).
VMUNET_BIN ?= $(BIN_DEBUG)
test-ort-matrix: toolchain venv
	$(if $(filter $(BIN_DEBUG),$(VMUNET_BIN)),$(BUILD_ALL))
	VMUNET_BIN=$(VMUNET_BIN) ORT_VERSION=$(ORT_VERSION) PYTHON=$(VENV)/bin/python tests/ort-matrix.sh

# The deployment build (`--no-default-features --features deploy`: infer, forward, bench, parity
# between runtimes, info; tract and ONNX Runtime; no burn, no training, no HDF5): its dependency
# tree must hold no burn, training or HDF5 crate, and the binary must reproduce the golden
# logits in tract and in every ONNX Runtime of the matrix. It builds in the shared target folder
# (what it has in common with the full build is compiled once: crates/vmunet-workspace-hack
# asks for the full build's features on shared low-level crates, mk/unify-check.py keeps it so)
# and is copied to $(DEPLOY_BIN) at once; target/debug/vmunet is the full binary again after the next $(BUILD_ALL), which is fresh
# and only puts it back.
# With ONNX Runtime's CUDA and TensorRT providers compiled in (no GPU here: they must build, and
# with PyPI's CPU-only library the CPU provider runs).
DEPLOY_FEATURES := deploy,ort-cuda,ort-tensorrt
DEPLOY_BIN := build/bin/deploy/vmunet
test-deploy: toolchain venv
	@if $(CARGO) tree -p vmunet-cli --no-default-features --features $(DEPLOY_FEATURES) -e normal --prefix none \
	    | grep -E '^(burn|vmunet-(model|train|onnx) |hdf5)' ; then \
	  echo "test-deploy: the deployment build depends on the crates above" >&2; exit 1; \
	else echo "test-deploy: no burn, training, exporter or HDF5 crate in the deployment build"; fi
	@python3 mk/unify-check.py $(CARGO) $(DEPLOY_FEATURES)
	$(PHASE) deploy-build $(CARGO) build -p vmunet-cli --no-default-features --features $(DEPLOY_FEATURES)
	@mkdir -p $(dir $(DEPLOY_BIN)) && cp $(BIN_DEBUG) $(DEPLOY_BIN)
	$(PHASE) deploy-ort-matrix env VMUNET_BIN=$(abspath $(DEPLOY_BIN)) ORT_VERSION=$(ORT_VERSION) PYTHON=$(VENV)/bin/python tests/ort-matrix.sh

lint: toolchain hdf5 cbuild
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy -p vmunet-cli --no-default-features --features $(DEPLOY_FEATURES) -- -D warnings
	$(CARGO) clippy -p vmunet-scan --features wgpu --all-targets -- -D warnings
	$(CARGO) clippy -p vmunet-cli --features cuda -- -D warnings

fmt:
	$(CARGO) fmt --all

# The whole pipeline on the CPU in a few minutes: train a narrow VM-UNet (same architecture,
# DEMO_DIMS channels) on ../shared/data/isic2017 (or a generated lesion set when ../shared is
# absent), evaluate it with the paper's metrics, export it (standard ops and the custom scan
# operator), segment a full-resolution image with ONNX Runtime, and check parity of both
# exports against burn in tract and ONNX Runtime.
# On 2 CPU cores the default (dims 16..128 at 96x96, ~12 images/s) trains 3 epochs of the 1,400
# ISIC 2017 training images in ~6 minutes and reaches a validation DSC of ~0.77.
# DEMO_STEPS (empty: whole epochs) caps the optimizer steps; DEMO_VAL images are validated
# after each epoch; the final evaluation uses the whole validation split.
DEMO_DIMS ?= 16,32,64,128
DEMO_SIZE ?= 96
DEMO_EPOCHS ?= 3
DEMO_STEPS ?=
DEMO_BATCH ?= 8
DEMO_VAL ?= 100
# The reference model the project ships (models/README.md: trained by `vmunet train` on ISIC 2017,
# dims 16..128 at 128x128): the demo scores, exports, segments and checks it as well.
REF_MODEL ?= models/isic2017-16-128.bpk
PRUNED_MODEL ?= models/isic2017-16-128-p50.bpk
demo: build venv
	@mkdir -p $(DEMO_OUT)
	@set -e; \
	data=$(SHARED)/data/isic2017; \
	if [ ! -d $$data/train/images ]; then \
	  data=$(DEMO_OUT)/synthetic-isic; \
	  echo "../shared is absent: generating a synthetic lesion set at $$data (the metrics below are on synthetic images)"; \
	  $(BIN) synth-isic --out $$data --train 400 --val 100; \
	fi; \
	img=$$(ls $(SHARED)/data/isic2017-fullres/images/*.jpg 2>/dev/null | head -n 1); \
	if [ -z "$$img" ]; then img=$$(ls $$data/val/images/* | head -n 1); fi; \
	run=$(DEMO_OUT)/run; rm -rf $$run; \
	echo "== train VM-UNet (dims $(DEMO_DIMS), $(DEMO_SIZE)x$(DEMO_SIZE)) on $$data: $(DEMO_EPOCHS) epochs of batch $(DEMO_BATCH)$(if $(DEMO_STEPS), (at most $(DEMO_STEPS) steps)), AdamW + cosine, BceDice, on the CPU"; \
	$(BIN) train --data $$data --out $$run --dims $(DEMO_DIMS) --image-size $(DEMO_SIZE) --epochs $(DEMO_EPOCHS) $(if $(DEMO_STEPS),--max-steps $(DEMO_STEPS)) --batch-size $(DEMO_BATCH) --max-val-images $(DEMO_VAL); \
	echo "== evaluate best.bpk on the whole validation split (paper metrics)"; \
	$(BIN) eval --checkpoint $$run/best.bpk --data $$data --size $(DEMO_SIZE) --json $(DEMO_OUT)/eval.json; \
	echo "== export: standard ONNX ops (portable) and the ai.vmunet::SelectiveScan operator (fastest on CPU)"; \
	$(BIN) export --checkpoint $$run/best.bpk --class-names lesion --size $(DEMO_SIZE) -o $(DEMO_OUT)/vmunet-trained.onnx; \
	$(BIN) export --checkpoint $$run/best.bpk --class-names lesion --size $(DEMO_SIZE) --profile devices/x86-cpu.toml -o $(DEMO_OUT)/vmunet-trained-custom.onnx; \
	echo "== segment $$img with ONNX Runtime (profile devices/x86-cpu.toml)"; \
	$(BIN) infer --model $(DEMO_OUT)/vmunet-trained-custom.onnx --profile devices/x86-cpu.toml "$$img" --out $(DEMO_OUT)/masks; \
	echo "== parity: burn vs the exports in tract and ONNX Runtime (validation images)"; \
	$(BIN) parity --checkpoint $$run/best.bpk --model $(DEMO_OUT)/vmunet-trained.onnx --images $$data/val/images --max-images 4 --random 1 --json $(DEMO_OUT)/parity.json; \
	$(BIN) parity --checkpoint $$run/best.bpk --model $(DEMO_OUT)/vmunet-trained-custom.onnx --images $$data/val/images --max-images 4 --random 1 --json $(DEMO_OUT)/parity-custom.json; \
	echo "== the reference model $(REF_MODEL) (models/README.md): paper metrics on the validation split at the size it was trained at"; \
	$(BIN) eval --checkpoint $(REF_MODEL) --data $$data --json $(DEMO_OUT)/eval-reference.json; \
	echo "== export it with the custom scan operator (at its recorded input size), segment $$img with ONNX Runtime, parity against burn"; \
	$(BIN) export --checkpoint $(REF_MODEL) --class-names lesion --profile devices/x86-cpu.toml -o $(DEMO_OUT)/reference-custom.onnx; \
	$(BIN) infer --model $(DEMO_OUT)/reference-custom.onnx --profile devices/x86-cpu.toml "$$img" --out $(DEMO_OUT)/masks-reference; \
	$(BIN) parity --checkpoint $(REF_MODEL) --model $(DEMO_OUT)/reference-custom.onnx --images $$data/val/images --max-images 4 --random 1 --json $(DEMO_OUT)/parity-reference.json; \
	echo "== compress the reference model: fp16, int8 for ONNX Runtime (QDQ) and for tract (QOperator), calibrated on 32 training images; info shows the history"; \
	$(BIN) compress fp16 --model $(DEMO_OUT)/reference-custom.onnx -o $(DEMO_OUT)/reference-fp16.onnx; \
	$(BIN) compress int8 --model $(DEMO_OUT)/reference-custom.onnx --calib $$data/train/images --profile devices/x86-cpu.toml -o $(DEMO_OUT)/reference-int8-qdq.onnx; \
	$(BIN) compress int8 --model $(DEMO_OUT)/reference-custom.onnx --calib $$data/train/images --profile devices/cpu-tract.toml -o $(DEMO_OUT)/reference-int8-qoperator.onnx; \
	$(BIN) info --model $(DEMO_OUT)/reference-int8-qdq.onnx; \
	echo "== every form of the reference model and its pruned + fine-tuned variant $(PRUNED_MODEL), side by side"; \
	$(BIN) compress report --checkpoint $(REF_MODEL) --pruned $(PRUNED_MODEL) --data $$data --out $(DEMO_OUT)/compress-report; \
	echo "run folder $$run: last.bpk, best.bpk, metrics.csv, curves.png; masks and reports in $(DEMO_OUT)/ (the reference model's in masks-reference/, *-reference.json; compression in compress-report/)"

# Every scan formulation in every runtime, beside burn, and the scan kernel against its bound.
bench: build venv
	$(BIN) bench --preset paper --all --kernel --runs 3 --json bench-paper.json

# The official PyTorch VM-UNet timed beside vmunet in one run, on this machine: needs
# OFFICIAL=<checkout of github.com/JCruan519/VM-UNet> and PEER_PYTHON=<a Python with torch, timm
# and einops> (neither ships with vmunet). Ratios come from this run only.
# Writes build/bench-peer-pytorch.json, build/bench-peer.json and build/bench-peer.md.
PEER_THREADS ?= $(shell nproc)
.PHONY: bench-peer
bench-peer: build venv
	@if [ -z "$(OFFICIAL)" ] || [ -z "$(PEER_PYTHON)" ]; then \
	  echo "bench-peer: set OFFICIAL=<checkout of the official VM-UNet> and PEER_PYTHON=<python with torch, timm, einops>" >&2; exit 2; fi
	@mkdir -p build
	$(PEER_PYTHON) tests/bench_peer.py --official "$(OFFICIAL)" --threads $(PEER_THREADS) --out build/bench-peer-pytorch.json
	$(BIN) bench --preset paper --form custom --form scan --kernel --runs 5 --threads $(PEER_THREADS) \
	  --peer build/bench-peer-pytorch.json --json build/bench-peer.json | tee build/bench-peer.md

clean:
	rm -rf $(DEMO_OUT) bench-paper.json build

# The watch-folder service on the full-resolution ISIC photos (../shared): throughput with the
# photos present at start, and arrival-to-mask latency with photos copied in one at a time,
# for the reference model (custom scan) in tract and ONNX Runtime. Writes build/bench-serve-*.md.
# BASELINE=<a previous build's vmunet binary> repeats the batch run with it in the same run and
# reports the photos/s ratio and the mask agreement between the two (build one with
# `git worktree add ../prev REV && CARGO_TARGET_DIR=../prev/target make -C ../prev build`).
.PHONY: bench-serve
bench-serve: build venv
	@set -e; d=$$(mktemp -d); trap 'rm -rf $$d' EXIT; \
	$(BIN) export --checkpoint $(REF_MODEL) --scan custom --class-names lesion -o $$d/ref-custom.onnx >/dev/null; \
	for rt in tract ort; do \
	  $(VENV)/bin/python tests/bench_serve.py $(BIN) $$d/ref-custom.onnx $(SHARED)/data/isic2017-fullres/images \
	    --runtime $$rt --table build/bench-serve-$$rt.md $(if $(BASELINE),--baseline $(BASELINE)); echo; \
	done

# The reference model as built into the binary (crates/vmunet-embedded): its export with the
# custom scan operator. The e2e test `the_built_in_model_is_the_export_of_the_shipped_checkpoint`
# fails when it is stale.
models/isic2017-16-128.onnx: models/isic2017-16-128.bpk
	$(CARGO) run -q -p vmunet-cli -- export --checkpoint $< --class-names lesion --scan custom -o $@

# CI as a new machine runs it (README "Testing"): `.ci/run` in a fresh clone of HEAD beside
# ../shared, with an empty cargo registry (CARGO_HOME), empty target folders, no build/ and no
# pip cache. System packages (apt) and the Rust toolchain stay as installed. Prints the phase
# table; the folder is removed afterwards (KEEP=1 keeps it).
.PHONY: ci-cold
ci-cold:
	@set -u; d=$$(mktemp -d "$${TMPDIR:-/tmp}/vmunet-ci-cold.XXXXXX"); \
	git clone -q . "$$d/repo" && ln -s "$(SHARED)" "$$d/shared" && mkdir -p "$$d/cargo-home"; \
	echo "ci-cold: $$d (commit $$(git rev-parse --short HEAD))"; \
	( cd "$$d/repo" && env -u ORT_DYLIB_PATH -u VMUNET_PYTHON -u VMUNET_SHARED -u MAKEFLAGS -u MAKELEVEL \
	    CARGO_HOME="$$d/cargo-home" CARGO_TARGET_DIR="$$d/target" JETSON_TARGET_DIR="$$d/target-aarch64" \
	    PIP_NO_CACHE_DIR=1 PHASE_LOG="$$d/phases.tsv" CI=true bash .ci/run ); rc=$$?; \
	mkdir -p build && cp "$$d/phases.tsv" build/phases-ci-cold.tsv 2>/dev/null || true; \
	if [ "$(KEEP)" = 1 ]; then echo "ci-cold: kept $$d"; else rm -rf "$$d"; fi; exit $$rc
