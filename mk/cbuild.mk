# Build tools for the C code vendored by crates: libjpeg-turbo (crate `turbojpeg`, vmunet-data's
# default `turbojpeg` feature: the JPEG decoder Pillow uses) is compiled with CMake, and its x86
# SIMD with NASM (the aarch64 NEON code needs only the cross gcc). Included by the main Makefile;
# `make cbuild` is idempotent. Without them: build vmunet-data with `default-features = false`
# (JPEGs then go through the `image` crate's decoder).
CBUILD_PKGS := cmake nasm
CBUILD_SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: cbuild

cbuild:
	@missing=""; for t in $(CBUILD_PKGS); do command -v $$t >/dev/null 2>&1 || missing="$$missing $$t"; done; \
	if [ -z "$$missing" ]; then \
	  echo "cbuild: cmake and nasm present"; \
	elif ! command -v apt-get >/dev/null 2>&1; then \
	  echo "cbuild: missing$$missing and apt-get is not available; install them with your package manager" >&2; exit 1; \
	elif [ -n "$(CBUILD_SUDO)" ] && ! command -v sudo >/dev/null 2>&1; then \
	  echo "cbuild: missing$$missing; run as root or install sudo: apt-get install -y$$missing" >&2; exit 1; \
	else \
	  echo "cbuild: installing$$missing"; \
	  $(CBUILD_SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing >/dev/null \
	  || { $(CBUILD_SUDO) apt-get update -q && $(CBUILD_SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing >/dev/null; } \
	  || { echo "cbuild: could not install$$missing; install them by hand" >&2; exit 1; }; \
	fi
