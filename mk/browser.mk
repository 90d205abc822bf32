# Headless Chromium for the report's screenshot test (tests/test_report_render.py). Included by
# the top-level Makefile; `test-python` depends on `browser`. CHROMIUM names another binary.

CHROMIUM ?= chromium

.PHONY: browser

browser: ## Headless Chromium for the report screenshot test (Debian package chromium)
	@if command -v $(CHROMIUM) >/dev/null 2>&1; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing chromium (apt-get) for the report screenshot test"; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null \
	    || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; }; \
	else \
	  echo "chromium not found: install it (sudo apt-get install --no-install-recommends chromium) or set CHROMIUM=/path/to/chromium" >&2; \
	  exit 1; \
	fi
