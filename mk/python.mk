# The Python package (crates/vmunet-python: PyO3 bindings, one abi3 wheel per platform for
# CPython >= 3.10, built by maturin). Included by the main Makefile.
#
# `make wheel`: the release wheels into build/wheels/, x86_64 and aarch64 (Jetson; the cross
# toolchain of mk/jetson.mk), without the HDF5 feature (no system library in a wheel), checked
# for manylinux compliance by maturin.
# `make test-python`: the pytest suite (crates/vmunet-python/tests) on a test wheel installed
# into a fresh virtual environment. The test wheel is built at the `dev` profile with the
# workspace build's features, so it reuses that build's compiled crates (mk/unify-check.py
# keeps it so) instead of compiling the whole stack again in release.
PY_CRATE := crates/vmunet-python
PY_MANIFEST := $(PY_CRATE)/Cargo.toml
WHEEL_DIR := build/wheels
TEST_WHEEL_DIR := build/wheels-test
PYTEST_VENV := build/pytest-venv
MATURIN_VERSION := 1.16.0
# What the suite installs beside the wheel (pinned; Ray Data for the archive test).
PY_TEST_REQS := $(PY_CRATE)/tests/requirements.txt

.PHONY: wheel test-python python-venv-start

$(VENV)/.maturin-ok: | $(VENV)/.ok
	$(VENV)/bin/python -m pip install -q --disable-pip-version-check maturin==$(MATURIN_VERSION)
	touch $@

wheel: toolchain cbuild jetson-toolchain $(VENV)/.maturin-ok
	$(VENV)/bin/maturin build --release --no-default-features -m $(PY_MANIFEST) --out $(WHEEL_DIR)
	CARGO_TARGET_DIR=$(JETSON_TARGET_DIR) $(VENV)/bin/maturin build --release \
	  --target $(JETSON_TARGET) --no-default-features -m $(PY_MANIFEST) --out $(WHEEL_DIR)
	@ls -l $(WHEEL_DIR)

# `make test` starts the suite's environment in the background before the workspace build
# (python-venv-start): its downloads overlap the compilation.
python-venv-start:
	@PYTHON=$(PYTHON) mk/pytest-venv.sh start $(PYTEST_VENV) $(PY_TEST_REQS) $(ORT_VERSION)

# The suite runs from build/ (not the crate) so that `import vmunet` can only find the
# installed wheel, without ORT_DYLIB_PATH (the onnxruntime package's library is found).
test-python: toolchain $(VENV)/.maturin-ok
	@python3 mk/unify-check.py $(CARGO) --python
	$(PHASE) python-wheel $(VENV)/bin/maturin build --profile dev -m $(PY_MANIFEST) \
	  --out $(TEST_WHEEL_DIR) --compatibility linux --auditwheel skip
	$(PHASE) python-venv env PYTHON=$(PYTHON) mk/pytest-venv.sh wait $(PYTEST_VENV) $(PY_TEST_REQS) $(ORT_VERSION) \
	  $$(ls -t $(TEST_WHEEL_DIR)/vmunet-*.whl | head -n 1)
	$(PHASE) python-tests bash -c 'cd build && env -u ORT_DYLIB_PATH VMUNET_BIN=$(BIN_DEBUG) \
	  VMUNET_REPO=$(abspath .) VMUNET_RAY_REPORT=$(abspath build/ray-throughput.md) \
	  $(abspath $(PYTEST_VENV))/bin/python -m pytest -q -p no:cacheprovider $(abspath $(PY_CRATE)/tests)'

# The aarch64 wheel of `make wheel` under qemu-user: Debian's arm64 CPython 3.11 and its
# libraries extracted into build/py-aarch64/ (apt-get download; adds the arm64 architecture to
# dpkg once), numpy and Pillow's aarch64 wheels from PyPI, then
# crates/vmunet-python/tests/aarch64_check.py against masks the x86 binary writes. Not part of
# `make test` (the release aarch64 wheel takes ~22 minutes to build on 2 cores).
PY_A64 := build/py-aarch64
PY_A64_DEBS := python3.11-minimal libpython3.11-minimal libpython3.11-stdlib libc6 zlib1g libexpat1 \
  libffi8 libgcc-s1 libstdc++6 libbz2-1.0 liblzma5 libssl3 libsqlite3-0 libncursesw6 libtinfo6 \
  libreadline8 libuuid1 libcrypt1 libnsl2 libtirpc3 libdb5.3 libgdbm6
.PHONY: test-wheel-aarch64
test-wheel-aarch64: $(VENV)/.ok
	@w=$$(ls -t $(WHEEL_DIR)/vmunet-*aarch64.whl 2>/dev/null | head -n 1); \
	[ -n "$$w" ] || { echo "test-wheel-aarch64: no aarch64 wheel in $(WHEEL_DIR): run make wheel" >&2; exit 1; }; \
	set -e; if [ ! -x $(PY_A64)/root/usr/bin/python3.11 ]; then \
	  dpkg --print-foreign-architectures | grep -qx arm64 || { $(JETSON_SUDO) dpkg --add-architecture arm64 && $(JETSON_SUDO) apt-get update -q; }; \
	  mkdir -p $(PY_A64)/debs $(PY_A64)/root && cd $(PY_A64)/debs && apt-get download -q $(addsuffix :arm64,$(PY_A64_DEBS)) && \
	  for d in *.deb; do dpkg-deb -x $$d ../root; done; cd - >/dev/null; fi; \
	rm -rf $(PY_A64)/site $(PY_A64)/ref && mkdir -p $(PY_A64)/site; \
	$(VENV)/bin/python -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: --python-version 3.11 \
	  --platform manylinux_2_28_aarch64 numpy==2.4.6 pillow==$(PILLOW_VERSION) -d $(PY_A64)/wheels; \
	for f in $(PY_A64)/wheels/*.whl $$w; do $(VENV)/bin/python -m zipfile -e $$f $(PY_A64)/site; done; \
	$(BIN_DEBUG) infer --out $(PY_A64)/ref $$(ls $(SHARED)/data/isic2017/val/images/*.jpg | head -n 6) >/dev/null; \
	QEMU_LD_PREFIX=$(abspath $(PY_A64)/root) PYTHONPATH=$(abspath $(PY_A64)/site) qemu-aarch64 $(PY_A64)/root/usr/bin/python3.11 \
	  $(PY_CRATE)/tests/aarch64_check.py $(abspath .) $(SHARED) $(PY_A64)/ref
