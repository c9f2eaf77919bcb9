# HarmoSE: two commands set everything up on a fresh Debian machine.
#   make run   — install missing system packages, build release, run pipeline.json on data/
#   make test  — install missing system packages, run the test suite (kernel tests also under ASan)
#   make bench — benchmarks (results go in BENCHMARKS.md by hand, with the command)
#   make fuzz  — libFuzzer harnesses of every input parser (docs/robustness.md)
SHELL := /bin/bash
DEB_PACKAGES := libhdf5-dev libopenblas-dev libarchive-dev pkg-config libopenmpi-dev openmpi-bin libsuitesparse-dev libarpack2-dev gpaw-data zlib1g-dev libdeflate-dev
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
SWIFT_BUILD_FLAGS ?=
HARMOSE := .build/release/harmose

.PHONY: deps build run test bench fuzz clean

deps:
	@missing=""; for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "Installing system packages:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

# Only the product users run: the fuzz harnesses (tools/fuzz.sh, make fuzz) import the parsers
# @testable, which a release build cannot.
build: deps
	swift build -c release --product harmose $(SWIFT_BUILD_FLAGS)

run: build
	$(HARMOSE) run --pipeline pipeline.json

# The tensor-product kernels read and write through raw pointers with vector loads that may run
# past a segment: their tests run a second time under AddressSanitizer (own build folder). Leak
# reports are off: XCTest itself leaks a few objects per test case.
test: deps
	swift test $(SWIFT_BUILD_FLAGS)
	ASAN_OPTIONS=detect_leaks=0 swift test --scratch-path .build-asan --sanitize=address $(SWIFT_BUILD_FLAGS) \
	  --filter 'FusedTensorProductTests|FullyConnectedTensorProductTests'

# Each benchmark is a script in tools/bench/ that prints its results (medians and ratios).
bench: build
	@for s in tools/bench/*.sh; do [ -e "$$s" ] || continue; echo "== $$s"; bash "$$s" || exit 1; done

# libFuzzer harnesses for every parser of outside data (not part of `make test`, which replays
# their seeds and past findings): FUZZ_RUNS executions each, FUZZ_SECONDS cap. docs/robustness.md.
FUZZ_RUNS ?= 1000000
fuzz: deps
	FUZZ_SECONDS=$${FUZZ_SECONDS:-0} tools/fuzz.sh $(FUZZ_RUNS)

clean:
	rm -rf .build .build-asan .build-fuzz
