# Two commands do everything on a fresh Debian/Ubuntu machine with Swift installed:
#   make demo   — build recurd and run the daemon on a bundled real data set
#   make test   — build and run the whole test suite
# Both install the system libraries they need first (apt-get, with sudo when not root).

SWIFT     ?= swift
APT_PKGS  := libzmq3-dev libsqlite3-dev zlib1g-dev pkg-config
SUDO      := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
RELEASE   := .build/release/recurd
# The Python client's tests run in their own virtual environment, inside .build (never committed).
PYVENV    := .build/venv-python
PYTHON    ?= python3

.PHONY: all deps python-deps build release test test-swift test-python test-debug demo bench clean

all: build

# Installs only what is missing, so repeated runs cost nothing.
deps:
	@missing=""; for p in $(APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 update -qq || echo "warning: apt-get update failed; installing from the package lists there are"; \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq $$missing; \
	fi

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release --product recurd

# pyzmq, numpy and pytest for the Python client's tests; Debian's python3 needs python3-venv
# for `-m venv`, installed only when the first attempt fails.
python-deps: deps
	@if [ ! -x $(PYVENV)/bin/pytest ]; then \
	  rm -rf $(PYVENV); \
	  $(PYTHON) -m venv $(PYVENV) 2>/dev/null || { rm -rf $(PYVENV); \
	    { $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 update -qq || true; } && \
	    $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq python3-venv && \
	    $(PYTHON) -m venv $(PYVENV); }; \
	  $(PYVENV)/bin/pip install -q --disable-pip-version-check --retries 10 --timeout 60 pyzmq numpy pytest; \
	fi

# The suite runs on the release build: the configuration that ships (the numerics without
# runtime checks) is the one tested. `make test-debug` runs the Swift suite on a debug build.
# Then the Python client's tests run against the same release binary.
# The Python deps first: a failed download fails the run at once, not after the Swift suite.
test: python-deps test-swift test-python

test-swift: deps
	$(SWIFT) build -c release --build-tests -Xswiftc -enable-testing
	$(SWIFT) test -c release --skip-build -Xswiftc -enable-testing

test-python: deps python-deps
	@[ -x $(RELEASE) ] || $(SWIFT) build -c release --product recurd
	RECURD_BIN=$(RELEASE) $(PYVENV)/bin/python -m pytest -q Clients/python/tests

test-debug: deps
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build

# Starts the daemon in-process and streams the bundled NAB machine-temperature series through it.
demo: release
	$(RELEASE) demo

bench: release
	RECURD_BENCH_NO_BUILD=1 Benchmarks/run.sh all

clean:
	rm -rf .build
