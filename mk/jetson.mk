# Jetson-class aarch64 build (`make jetson`) and its tests under qemu-user (`make test-jetson`).
# Included by the main Makefile.
#
# `make jetson` cross-builds the deployment binary (tract + ONNX Runtime, no burn; with the
# CUDA and TensorRT execution providers, which need nothing at build time) and the custom-op
# library for aarch64-unknown-linux-gnu with Debian's cross gcc (.cargo/config.toml names the
# linker), installing the Rust target, the cross toolchain and qemu-user when missing.
# The binary needs glibc 2.35 or newer (Debian 12's cross toolchain): JetPack 6 (Ubuntu 22.04,
# glibc 2.35) runs it; JetPack 5 (Ubuntu 20.04, glibc 2.31) does not. `make test-jetson`
# prints the exact floor read off the binary.
JETSON_TARGET := aarch64-unknown-linux-gnu
JETSON_TARGET_DIR ?= $(HOME)/.cache/vmunet/target-aarch64
JETSON_PROFILE ?= release
JETSON_BIN := $(JETSON_TARGET_DIR)/$(JETSON_TARGET)/$(JETSON_PROFILE)/vmunet
JETSON_OPS := $(JETSON_TARGET_DIR)/$(JETSON_TARGET)/$(JETSON_PROFILE)/libvmunet_ort_ops.so
# `make test-jetson` checks the same build at profile `ci-aarch64` (Cargo.toml: optimisation level
# 1 but for the scan kernels and tract's matrix kernels; a minute less to build on 2 cores, the
# same time under qemu).
JETSON_TEST_PROFILE ?= ci-aarch64
JETSON_TEST_BIN := $(JETSON_TARGET_DIR)/$(JETSON_TARGET)/$(JETSON_TEST_PROFILE)/vmunet
JETSON_TEST_OPS := $(JETSON_TARGET_DIR)/$(JETSON_TARGET)/$(JETSON_TEST_PROFILE)/libvmunet_ort_ops.so
JETSON_PKGS := gcc-aarch64-linux-gnu libc6-dev-arm64-cross libstdc++6-arm64-cross qemu-user
# ONNX Runtime for the qemu tests: PyPI's aarch64 wheel of the version JetPack 6.1/6.2 ship.
JETSON_ORT_VERSION ?= 1.23.2
JETSON_ORT_DIR := build/ort-aarch64/$(JETSON_ORT_VERSION)
JETSON_SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: jetson jetson-toolchain test-jetson

jetson-toolchain: toolchain cbuild
	@rustup target list --installed 2>/dev/null | grep -qx $(JETSON_TARGET) || rustup target add $(JETSON_TARGET)
	@missing=$$(for p in $(JETSON_PKGS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -z "$$missing" ]; then echo "jetson: cross toolchain and qemu-user present"; \
	elif ! command -v apt-get >/dev/null 2>&1; then \
	  echo "jetson: missing $$missing and apt-get is not available; install an aarch64 cross gcc and qemu-user" >&2; exit 1; \
	else \
	  echo "jetson: installing $$missing"; \
	  $(JETSON_SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$missing \
	  || { $(JETSON_SUDO) apt-get update -q && $(JETSON_SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$missing; } \
	  || { echo "jetson: could not install $$missing" >&2; exit 1; }; \
	fi

jetson: jetson-toolchain
	CARGO_TARGET_DIR=$(JETSON_TARGET_DIR) $(CARGO) build --profile $(JETSON_PROFILE) --target $(JETSON_TARGET) \
	  -p vmunet-cli --no-default-features --features deploy,ort-cuda,ort-tensorrt -p vmunet-ort-ops
	@echo "jetson: $(JETSON_BIN)"
	@echo "jetson: $(JETSON_OPS)"
	@echo "jetson: needs $$(aarch64-linux-gnu-objdump -T $(JETSON_BIN) | grep -o 'GLIBC_[0-9.]*' | sort -t. -k2,2n -k3,3n -u | tail -n 1) or newer (JetPack 6+)"

$(JETSON_ORT_DIR)/.ok: | $(VENV)/.ok
	mkdir -p $(JETSON_ORT_DIR)/wheel
	$(VENV)/bin/python -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
	  --python-version 3.11 --platform manylinux_2_28_aarch64 --platform manylinux_2_27_aarch64 \
	  onnxruntime==$(JETSON_ORT_VERSION) -d $(JETSON_ORT_DIR)/wheel
	$(VENV)/bin/python -c 'import glob, os, sys, zipfile; d = sys.argv[1]; z = zipfile.ZipFile(glob.glob(d + "/wheel/*.whl")[0]); \
	  [open(os.path.join(d, os.path.basename(n)), "wb").write(z.read(n)) for n in z.namelist() if "/capi/libonnxruntime.so" in n]' $(JETSON_ORT_DIR)
	touch $@

# The NEON scan kernels' tests (the scan crate's test binaries under qemu, through the runner in
# .cargo/config.toml), then the aarch64 binary against the x86 one (tests/jetson-qemu.sh).
test-jetson: jetson-toolchain $(JETSON_ORT_DIR)/.ok
	$(PHASE) jetson-build $(MAKE) --no-print-directory jetson JETSON_PROFILE=$(JETSON_TEST_PROFILE)
	$(PHASE) jetson-scan-tests env CARGO_TARGET_DIR=$(JETSON_TARGET_DIR) $(CARGO) test --target $(JETSON_TARGET) -p vmunet-scan
	$(if $(filter $(BIN_DEBUG),$(X86_BIN)),$(BUILD_ALL))
	$(PHASE) jetson-qemu env JETSON_BIN=$(JETSON_TEST_BIN) JETSON_OPS=$(JETSON_TEST_OPS) X86_BIN=$(X86_BIN) PYTHON=$(VENV)/bin/python \
	  ORT_AARCH64=$$(ls $(abspath $(JETSON_ORT_DIR))/libonnxruntime.so.* | head -n 1) tests/jetson-qemu.sh

# Stock Python ONNX Runtime at paper size, one run: the standard-op export (what any ONNX Runtime
# user can run) against the custom-operator export with libvmunet_ort_ops.so.
.PHONY: bench-ort-ops
bench-ort-ops: build venv
	$(CARGO) build --release -p vmunet-ort-ops
	@set -e; d=$$(mktemp -d); trap 'rm -rf $$d' EXIT; \
	for form in scan custom; do $(BIN) export --preset paper --scan $$form --size 256 -o $$d/paper-$$form.onnx >/dev/null; done; \
	$(VENV)/bin/python -c 'import numpy as np; np.save("'$$d'/x.npy", (np.arange(3*256*256).reshape(1,3,256,256) * 7919 % 256).astype(np.float32))'; \
	for form in scan custom; do $(BIN) forward --model $$d/paper-$$form.onnx --runtime tract --input $$d/x.npy --output $$d/y-$$form.npy; done; \
	echo "== standard ops (--scan scan), stock ONNX Runtime"; \
	$(VENV)/bin/python onnx/check_model.py --time 5 $$d/paper-scan.onnx $$d/x.npy $$d/y-scan.npy r1e-4; \
	echo "== custom operator (--scan custom), stock ONNX Runtime + libvmunet_ort_ops.so"; \
	$(VENV)/bin/python onnx/check_model.py --custom-ops $(CARGO_TARGET_DIR)/release/libvmunet_ort_ops.so --time 5 $$d/paper-custom.onnx $$d/x.npy $$d/y-custom.npy r1e-4

# JetPack 5 (Ubuntu 20.04, glibc 2.31): the same build linked by cargo-zigbuild (zig as the
# linker, from PyPI's `ziglang`) against glibc 2.31's symbols. Measured floor: GLIBC_2.30; it runs
# the golden models under qemu like the glibc 2.35 build. Not part of `make test` (a second full
# aarch64 build). On JetPack 5 use tract, or an ONNX Runtime 1.20+ built for it (NVIDIA's JetPack 5
# wheels are older than the C API level 20 this build asks for).
JETSON_JP5_TARGET_DIR ?= $(HOME)/.cache/vmunet/target-aarch64-jp5
JETSON_JP5_BIN := $(JETSON_JP5_TARGET_DIR)/$(JETSON_TARGET)/$(JETSON_PROFILE)/vmunet
.PHONY: jetson-jp5
jetson-jp5: jetson-toolchain venv
	$(VENV)/bin/python -m pip install -q --disable-pip-version-check ziglang
	@command -v cargo-zigbuild >/dev/null || $(CARGO) install --locked cargo-zigbuild
	PATH=$(abspath $(VENV))/bin:$$PATH CARGO_TARGET_DIR=$(JETSON_JP5_TARGET_DIR) $(CARGO) zigbuild --$(JETSON_PROFILE) \
	  --target $(JETSON_TARGET).2.31 -p vmunet-cli --no-default-features --features deploy,ort-cuda,ort-tensorrt -p vmunet-ort-ops
	@echo "jetson-jp5: $(JETSON_JP5_BIN)"
	@echo "jetson-jp5: needs $$(aarch64-linux-gnu-objdump -T $(JETSON_JP5_BIN) | grep -o 'GLIBC_[0-9.]*' | sort -t. -k2,2n -k3,3n -u | tail -n 1) or newer"
