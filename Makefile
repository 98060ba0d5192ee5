# vmunet — every set-up step lives here; CI runs `make test` on a fresh clone.
SHELL := /bin/bash
CARGO ?= cargo
# Builds live outside the clone so a warm machine reuses them.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/vmunet/target
SHARED ?= $(abspath ../shared)
export VMUNET_SHARED ?= $(SHARED)
BIN_DEBUG := $(CARGO_TARGET_DIR)/debug/vmunet
BIN := $(CARGO_TARGET_DIR)/release/vmunet
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

.PHONY: all build test lint fmt demo bench clean toolchain venv

all: build

toolchain:
	@command -v $(CARGO) >/dev/null || { echo "cargo not found: install Rust (rustup) first" >&2; exit 1; }

build: toolchain
	$(CARGO) build --release -p vmunet-cli

$(VENV)/.ok:
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --disable-pip-version-check onnx==$(ONNX_VERSION) onnxruntime==$(ORT_VERSION) numpy
	touch $@

venv: $(VENV)/.ok

# Unit tests beside the code, fixture parity, CLI end-to-end tests (tests/).
test: toolchain venv
	$(CARGO) fmt --all -- --check
	$(CARGO) build -p vmunet-cli
	VMUNET_BIN=$(BIN_DEBUG) $(CARGO) test --workspace

lint: toolchain
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

# The paper-size model on a real ISIC image (or a generated one), end to end on the CPU:
# checkpoint, export (standard ops and the custom scan operator), segment with ONNX Runtime,
# parity of both exports against burn in every runtime, timing.
demo: build venv
	@mkdir -p $(DEMO_OUT)
	@img=$$(ls $(SHARED)/data/isic2017-fullres/images/*.jpg 2>/dev/null | head -n 1); \
	if [ -z "$$img" ]; then \
	  img=$(DEMO_OUT)/generated-lesion.ppm; \
	  echo "../shared is absent: generating a synthetic lesion image at $$img"; \
	  awk 'BEGIN { print "P3 320 240 255"; for (y = 0; y < 240; y++) for (x = 0; x < 320; x++) { d = (x-160)^2 + (y-120)^2; if (d < 3600) print 90, 50, 40; else print 220, 180, 160 } }' > $$img; \
	fi; \
	if [ -d $(SHARED)/data/isic2017/val/images ]; then imgs="--images $(SHARED)/data/isic2017/val/images --max-images 2"; else imgs=""; fi; \
	set -e; \
	echo "== model"; $(BIN) info --preset paper | head -n 4; \
	echo "== checkpoint (paper-size VM-UNet, fresh weights: this shows the pipeline, not a diagnosis)"; \
	$(BIN) init --preset paper -o $(DEMO_OUT)/vmunet-paper.bpk; \
	echo "== export: standard ONNX ops (portable) and the ai.vmunet::SelectiveScan operator (fastest on CPU)"; \
	$(BIN) export --checkpoint $(DEMO_OUT)/vmunet-paper.bpk --class-names lesion -o $(DEMO_OUT)/vmunet-paper.onnx; \
	$(BIN) export --checkpoint $(DEMO_OUT)/vmunet-paper.bpk --class-names lesion --profile devices/x86-cpu.toml -o $(DEMO_OUT)/vmunet-paper-custom.onnx; \
	echo "== segment $$img with ONNX Runtime (profile devices/x86-cpu.toml)"; \
	$(BIN) infer --model $(DEMO_OUT)/vmunet-paper-custom.onnx --profile devices/x86-cpu.toml "$$img" --out $(DEMO_OUT)/masks; \
	echo "== parity: burn vs the exports in tract and ONNX Runtime"; \
	$(BIN) parity --checkpoint $(DEMO_OUT)/vmunet-paper.bpk --model $(DEMO_OUT)/vmunet-paper.onnx $$imgs --random 1 --json $(DEMO_OUT)/parity.json; \
	$(BIN) parity --checkpoint $(DEMO_OUT)/vmunet-paper.bpk --model $(DEMO_OUT)/vmunet-paper-custom.onnx $$imgs --random 1 --json $(DEMO_OUT)/parity-custom.json; \
	echo "== forward timing (3 runs each)"; \
	$(BIN) bench --model $(DEMO_OUT)/vmunet-paper-custom.onnx --runtime ort --runs 3; \
	$(BIN) bench --checkpoint $(DEMO_OUT)/vmunet-paper.bpk --runs 3 --json $(DEMO_OUT)/bench.json; \
	echo "masks, overlays, timing.csv, the ONNX models and the reports are in $(DEMO_OUT)/"

# Every scan formulation in every runtime, beside burn and the official PyTorch figure.
bench: build venv
	$(BIN) bench --preset paper --all --runs 3 --json bench-paper.json

clean:
	rm -rf $(DEMO_OUT) bench-paper.json build
