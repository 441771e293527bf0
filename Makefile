# Two commands do everything on a fresh Debian/Ubuntu machine with Swift installed:
#   make demo   — build recurd and run the daemon on a bundled real data set
#   make test   — build and run the whole test suite
# Both install the system libraries they need first (apt-get, with sudo when not root).

SWIFT     ?= swift
APT_PKGS  := libzmq3-dev libsqlite3-dev zlib1g-dev pkg-config
SUDO      := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
RELEASE   := .build/release/recurd

.PHONY: all deps build release test test-debug demo bench clean

all: build

# Installs only what is missing, so repeated runs cost nothing.
deps:
	@missing=""; for p in $(APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release --product recurd

# The suite runs on the release build: the configuration that ships (the numerics without
# runtime checks) is the one tested. `make test-debug` runs it on a debug build.
test: deps
	$(SWIFT) build -c release --build-tests -Xswiftc -enable-testing
	$(SWIFT) test -c release --skip-build -Xswiftc -enable-testing

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
