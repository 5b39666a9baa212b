# pystack: every target sets itself up (creates .venv and installs) on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test robustness soak bench lint tools clean

# setuptools prints a caveat on every editable install ("Editable installation. Please be careful
# with folders ... same name as your package"): it is about how editable installs work, not about
# this project, so that one message is filtered out of the install (by its text, nothing else).
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	PYTHONWARNINGS="ignore:Editable installation" $(PY) -m pip install -q -e '.[test,dev]'
	touch $(STAMP)

# Debian tools the kernel tests use (only installed when missing; needs root). dnsmasq comes as
# dnsmasq-base: the binary alone, no service that would start a DNS server outside a namespace.
# tcpdump writes the pcap `pystack show` reads in its kernel test; chromium opens its HTML page.
tools:
	@missing=""; \
	command -v ip >/dev/null 2>&1 || missing="$$missing iproute2"; \
	command -v ping >/dev/null 2>&1 || missing="$$missing iputils-ping"; \
	command -v curl >/dev/null 2>&1 || missing="$$missing curl"; \
	command -v dnsmasq >/dev/null 2>&1 || [ -x /usr/sbin/dnsmasq ] || missing="$$missing dnsmasq-base"; \
	command -v tcpdump >/dev/null 2>&1 || [ -x /usr/bin/tcpdump ] || missing="$$missing tcpdump"; \
	command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	  else echo "note: missing$$missing (kernel tests will skip)"; fi; \
	fi

# A MicroPython HTTP client on the simulated network, traced: DNS, the handshake, the data, the close
# (`pystack demo` is the ARP/ping demo).
demo: $(STAMP)
	$(PY) -m pystack run --trace tools/examples/http_get.py

# micropython-lib's urequests and umqtt, Microdot and mqtt_async, laid out as mip installs them
# (tests run them unmodified).
MPLIB := $(VENV)/micropython-lib

$(MPLIB)/.installed: $(STAMP) tools/fetch_micropython_lib.py
	$(PY) tools/fetch_micropython_lib.py $(MPLIB) >/dev/null
	touch $@

test: $(STAMP) tools $(MPLIB)/.installed
	$(PY) -m pytest -q

# The robustness suite alone (tests/robustness, root: namespaces over TUN), quick sizes as in
# `make test`; `make soak` runs it with the soak sizes (PYSTACK_SOAK=1; see docs/robustness.md).
robustness: $(STAMP) tools $(MPLIB)/.installed
	$(PY) -m pytest -q -m robustness tests/robustness

soak: $(STAMP) tools $(MPLIB)/.installed
	PYSTACK_SOAK=1 $(PY) -m pytest -q -m robustness tests/robustness

bench: $(STAMP) tools
	$(PY) -m pystack bench

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
