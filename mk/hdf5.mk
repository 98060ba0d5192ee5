# HDF5 system library for vmunet-data's Synapse reader (crate `hdf5-metno`, test volumes
# `test_vol_h5/<case>.npy.h5`). Included by the main Makefile; `make hdf5` is idempotent.
#
# Build environment: on Debian/Ubuntu nothing needs setting. `hdf5-metno-sys` finds the
# serial library through pkg-config (`hdf5`) or the Debian layout
# /usr/lib/<triple>/hdf5/serial. Elsewhere (Homebrew, conda, a custom build) set
# HDF5_DIR=<prefix holding include/ and lib/> before `cargo build`. Debian 12 ships HDF5
# 1.10.8, which hdf5-metno 0.15 supports (it accepts 1.8.4 up to 1.14.x).
HDF5_PKG ?= libhdf5-dev
HDF5_SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: hdf5

hdf5:
	@if dpkg -s $(HDF5_PKG) >/dev/null 2>&1 || pkg-config --exists hdf5 2>/dev/null; then \
	  echo "hdf5: system HDF5 library present"; \
	elif ! command -v apt-get >/dev/null 2>&1; then \
	  echo "hdf5: HDF5 (C library + headers) is missing and apt-get is not available;" >&2; \
	  echo "      install HDF5 1.8.4-1.14 and set HDF5_DIR to its prefix" >&2; exit 1; \
	elif [ -n "$(HDF5_SUDO)" ] && ! command -v sudo >/dev/null 2>&1; then \
	  echo "hdf5: $(HDF5_PKG) is missing; run as root or install sudo: apt-get install -y $(HDF5_PKG)" >&2; exit 1; \
	else \
	  echo "hdf5: installing $(HDF5_PKG)"; \
	  $(HDF5_SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $(HDF5_PKG) \
	  || { $(HDF5_SUDO) apt-get update -q && $(HDF5_SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $(HDF5_PKG); } \
	  || { echo "hdf5: could not install $(HDF5_PKG); install it by hand (or set HDF5_DIR)" >&2; exit 1; }; \
	fi
