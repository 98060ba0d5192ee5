# Mesa's software Vulkan driver (lavapipe) for the CubeCL scan-kernel tests on machines without
# a GPU. Included by the main Makefile.
#
#   make lavapipe      installs it (idempotent): apt-get as root (or via sudo); otherwise
#                      extracts the Debian packages under build/lavapipe (no root needed)
#   make test-kernel   runs crates/vmunet-scan/tests/cube_kernel.rs (burn-wgpu) on lavapipe
#
# On a machine with a real Vulkan GPU, `make test-kernel USE_LAVAPIPE=0` uses the system's
# drivers instead. The kernel build (vmunet-scan with the `wgpu` feature) shares the main target
# folder: its own units sit beside the main build's, which stay fresh.
LAVAPIPE_DIR := $(abspath build/lavapipe)
# Where the system's Vulkan ICD manifests live (point elsewhere to force the user-local path).
LAVAPIPE_SYSTEM_ICD ?= /usr/share/vulkan/icd.d
LAVAPIPE_PKGS ?= mesa-vulkan-drivers libvulkan1
LAVAPIPE_SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
USE_LAVAPIPE ?= 1
LAVAPIPE_ORIG_LD_PATH := $(LD_LIBRARY_PATH)
LIBDIR_TRIPLE := $(shell dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || echo x86_64-linux-gnu)

# The lavapipe ICD manifest: the system's, else the one `make lavapipe` extracted. Recursive
# (evaluated when used), so it sees a driver installed earlier in the same make run.
LVP_ICD = $(shell ls $(LAVAPIPE_SYSTEM_ICD)/lvp_icd.*.json $(LAVAPIPE_DIR)/icd/lvp_icd.json 2>/dev/null | head -n 1)

# Mesa's on-disk shader cache is useless for tests and may be unwritable.
export MESA_SHADER_CACHE_DISABLE := true

.PHONY: lavapipe test-kernel

lavapipe:
	@if ls $(LAVAPIPE_SYSTEM_ICD)/lvp_icd.*.json >/dev/null 2>&1 && \
	    { ldconfig -p 2>/dev/null | grep -q 'libvulkan\.so\.1' || ls /usr/lib/$(LIBDIR_TRIPLE)/libvulkan.so.1 >/dev/null 2>&1; }; then \
	  echo "lavapipe: system driver present ($$(ls $(LAVAPIPE_SYSTEM_ICD)/lvp_icd.*.json | head -n 1))"; \
	elif [ -f $(LAVAPIPE_DIR)/icd/lvp_icd.json ]; then \
	  echo "lavapipe: user-local driver present ($(LAVAPIPE_DIR))"; \
	elif ! command -v apt-get >/dev/null 2>&1; then \
	  echo "lavapipe: apt-get is not available; install Mesa's Vulkan drivers (lavapipe) and the" >&2; \
	  echo "          Vulkan loader with your package manager" >&2; exit 1; \
	elif [ -z "$(LAVAPIPE_SUDO)" ] || command -v sudo >/dev/null 2>&1; then \
	  echo "lavapipe: installing $(LAVAPIPE_PKGS)"; \
	  $(LAVAPIPE_SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $(LAVAPIPE_PKGS) \
	  || { $(LAVAPIPE_SUDO) apt-get update -q && $(LAVAPIPE_SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $(LAVAPIPE_PKGS); } \
	  || { echo "lavapipe: could not install $(LAVAPIPE_PKGS)" >&2; exit 1; }; \
	else \
	  echo "lavapipe: no root: extracting $(LAVAPIPE_PKGS) and their libraries under $(LAVAPIPE_DIR)"; \
	  set -e; rm -rf $(LAVAPIPE_DIR); mkdir -p $(LAVAPIPE_DIR)/debs $(LAVAPIPE_DIR)/root $(LAVAPIPE_DIR)/icd; \
	  deps=$$(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
	      --no-replaces --no-enhances $(LAVAPIPE_PKGS) | grep '^[a-z0-9]' | sort -u); \
	  missing=$$(for p in $$deps; do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	  cd $(LAVAPIPE_DIR)/debs && apt-get download $(LAVAPIPE_PKGS) $$missing; \
	  for d in $(LAVAPIPE_DIR)/debs/*.deb; do dpkg -x $$d $(LAVAPIPE_DIR)/root; done; \
	  src=$$(ls $(LAVAPIPE_DIR)/root/usr/share/vulkan/icd.d/lvp_icd.*.json | head -n 1); \
	  [ -n "$$src" ] || { echo "lavapipe: no lvp_icd manifest in the extracted packages" >&2; exit 1; }; \
	  sed "s#\"library_path\": *\"[^\"]*/#\"library_path\": \"$(LAVAPIPE_DIR)/root/usr/lib/$(LIBDIR_TRIPLE)/#" $$src \
	    > $(LAVAPIPE_DIR)/icd/lvp_icd.json; \
	  echo "lavapipe: ICD at $(LAVAPIPE_DIR)/icd/lvp_icd.json"; \
	fi

ifeq ($(USE_LAVAPIPE),1)
# Only lavapipe is visible to the tests: the same adapter on every machine.
test-kernel: export VK_ICD_FILENAMES = $(LVP_ICD)
test-kernel: export VK_DRIVER_FILES = $(LVP_ICD)
test-kernel: export LD_LIBRARY_PATH = $(shell [ -d $(LAVAPIPE_DIR)/root ] && echo $(LAVAPIPE_DIR)/root/usr/lib/$(LIBDIR_TRIPLE):)$(LAVAPIPE_ORIG_LD_PATH)
test-kernel: lavapipe
endif

test-kernel: toolchain
	@echo "test-kernel: VK_ICD_FILENAMES=$${VK_ICD_FILENAMES:-<system drivers>}"
	@python3 mk/unify-check.py $(CARGO) --kernel
	$(PHASE) kernel-test $(CARGO) test -p vmunet-scan --features wgpu --test cube_kernel -- --nocapture
