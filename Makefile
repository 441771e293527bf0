# Two commands do everything on a fresh Debian/Ubuntu machine with Swift installed:
#   make demo   — build and run recurd on a bundled real data set
#   make test   — build and run the whole test suite
# Both install the system libraries they need first (apt-get, with sudo when not root).

SWIFT     ?= swift
APT_PKGS  := libopenblas-dev libzmq3-dev pkg-config
SUDO      := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
RELEASE   := .build/release/recurd

.PHONY: all deps build release test demo bench clean

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

test: deps
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build

demo: release
	$(RELEASE) init --cell lstm --hidden 128 --vocab 256 --embed 32 --output-size 256 --head softmax --seed 1 -o .build/demo-model.safetensors
	head -c 200000 Data/text/shakespeare.txt > .build/demo-text.txt
	$(RELEASE) fit --model .build/demo-model.safetensors --input .build/demo-text.txt \
	  --k1 16 --k2 32 --optimizer adam --lr 0.005 --clip 1 --save .build/demo-fitted.safetensors

bench: release
	Benchmarks/run.sh

clean:
	rm -rf .build
