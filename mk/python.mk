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
