# The real peers of the clinical formats' tests (tests/cli/clinical.rs, tests/cli/dicom_node.rs,
# tests/clinical/): Debian's dcmtk (echoscu, storescu, storescp, dcmdump) and dicom3tools
# (dciodvfy), apt-get as root or via sudo; pydicom, highdicom, nibabel and pynetdicom in the test
# venv (tests/clinical/requirements.txt pins them). Included by the main Makefile; `make test`
# runs it in its setup phase.
CLINICAL_PKGS ?= dcmtk dicom3tools
CLINICAL_SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: clinical
clinical: $(VENV)/.clinical-ok
	@if command -v storescu >/dev/null 2>&1 && command -v dciodvfy >/dev/null 2>&1; then \
	  echo "clinical: dcmtk $$(storescu --version 2>/dev/null | grep -Eo 'v[0-9.]+' | head -n 1), dciodvfy"; \
	elif ! command -v apt-get >/dev/null 2>&1; then \
	  echo "clinical: apt-get is not available; install dcmtk and dicom3tools with your package manager" >&2; exit 1; \
	else \
	  echo "clinical: installing $(CLINICAL_PKGS)"; \
	  $(CLINICAL_SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $(CLINICAL_PKGS) >/dev/null \
	  || { $(CLINICAL_SUDO) apt-get update -q && $(CLINICAL_SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $(CLINICAL_PKGS) >/dev/null; } \
	  || { echo "clinical: could not install $(CLINICAL_PKGS)" >&2; exit 1; }; \
	fi

$(VENV)/.clinical-ok: tests/clinical/requirements.txt | $(VENV)/.ok
	$(VENV)/bin/python -m pip install -q --disable-pip-version-check -r tests/clinical/requirements.txt
	touch $@
