# A real headless browser for the page's test (tests/cli/serve_http.rs, tests/page_check.py):
# Debian's chromium and chromium-driver (apt-get as root or via sudo), selenium in the test venv.
# Included by the main Makefile; `make test` runs it in its setup phase.
BROWSER_PKGS ?= chromium chromium-driver
BROWSER_SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
SELENIUM_VERSION := 4.51.0

.PHONY: browser
browser: $(VENV)/.selenium-ok
	@if command -v chromedriver >/dev/null 2>&1 && { command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; }; then \
	  echo "browser: $$(chromedriver --version | head -n 1)"; \
	elif ! command -v apt-get >/dev/null 2>&1; then \
	  echo "browser: apt-get is not available; install chromium and its chromedriver with your package manager" >&2; exit 1; \
	else \
	  echo "browser: installing $(BROWSER_PKGS)"; \
	  $(BROWSER_SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $(BROWSER_PKGS) >/dev/null \
	  || { $(BROWSER_SUDO) apt-get update -q && $(BROWSER_SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $(BROWSER_PKGS) >/dev/null; } \
	  || { echo "browser: could not install $(BROWSER_PKGS)" >&2; exit 1; }; \
	fi

$(VENV)/.selenium-ok: | $(VENV)/.ok
	$(VENV)/bin/python -m pip install -q --disable-pip-version-check selenium==$(SELENIUM_VERSION)
	touch $@
