# edgecell — one entry point for newcomers, developers and CI.
#   make run    the main job: the embedded pipeline over the bundled data (does its own setup)
#   make test   every test (does its own setup)
SHELL := /bin/bash
CARGO ?= cargo
TARGET_DIR := $(or $(CARGO_TARGET_DIR),$(CURDIR)/target)
COMPONENT_DIR := $(TARGET_DIR)/wasm32-wasip2/component
# every component the host loads; actors join this list as they land
COMPONENTS := edgecell-probe edgecell-sensor-fusion edgecell-v2x-validator edgecell-video-analytics edgecell-kernels-component
export EDGECELL_COMPONENTS := $(COMPONENT_DIR)
export EDGECELL_NATS_SERVER := $(CURDIR)/tools/bin/nats-server

.PHONY: setup components build run test lint bench fmt clean-cache

setup:
	@bash scripts/setup.sh

components: setup
	$(CARGO) build --target wasm32-wasip2 --profile component $(addprefix -p ,$(COMPONENTS))

build: components
	$(CARGO) build --release -p edgecell

run: build
	$(TARGET_DIR)/release/edgecell run $(RUN_ARGS)

test: components
	$(CARGO) test --release --workspace

lint: components
	$(CARGO) clippy --release --workspace --all-targets -- -D warnings
	$(CARGO) clippy --target wasm32-wasip2 --profile component $(addprefix -p ,$(COMPONENTS)) -- -D warnings

bench: components
	$(CARGO) bench --workspace $(BENCH_ARGS)

fmt:
	$(CARGO) fmt --all

clean-cache:
	rm -rf $(TARGET_DIR)/edgecell-cache
