# edgecell — one entry point for newcomers, developers and CI.
#   make run    the main job: the embedded pipeline over the bundled data (does its own setup)
#   make test   every test (does its own setup), including the lattice end-to-end test
#   make e2e    only the end-to-end test on a real wasmCloud 1.9 lattice (NATS + wadm + host)
#   make up / deploy / down   a local lattice on loopback (see wadm/README.md)
SHELL := /bin/bash
CARGO ?= cargo
TARGET_DIR := $(or $(CARGO_TARGET_DIR),$(CURDIR)/target)
COMPONENT_DIR := $(TARGET_DIR)/wasm32-wasip2/component
# every component the host loads; actors join this list as they land
COMPONENTS := edgecell-probe edgecell-sensor-fusion edgecell-v2x-validator edgecell-video-analytics edgecell-kernels-component
export EDGECELL_COMPONENTS := $(COMPONENT_DIR)
export EDGECELL_NATS_SERVER := $(CURDIR)/tools/bin/nats-server
# tools/lattice (own workspace: wasmCloud 1.9.2 pins) builds into a target dir of its own: the
# two workspaces share no artifacts (different locks, features), and cargo locks a target dir's
# profile while it builds, so only separate dirs let `make test` build both at once
LATTICE_TARGET_DIR ?= $(TARGET_DIR)/lattice
LATTICE_BIN := $(LATTICE_TARGET_DIR)/release
export EDGECELL_LATTICE_BIN := $(LATTICE_BIN)
# kv-cache, metrics, inference: edgecell's capabilities; messaging-nats: NATS messaging that
# keeps OpenTelemetry traces whole (a drop-in for the host's built-in one)
PROVIDERS := kv-cache metrics inference messaging-nats
LATTICE_PACKAGES := edgecell-lattice-host edgecell-lattice-wadm edgecell-lattice-ctl edgecell-manifest-check $(foreach p,$(PROVIDERS),edgecell-$(p)-provider)
# the same selection as the build (plus the library the providers share): cargo unifies features
# over the packages selected, so any other set would compile the dependencies a second time
LATTICE_TESTS := $(LATTICE_PACKAGES) edgecell-provider-common
# linted: our tools and providers (not the two launchers, thin mains over the upstream crates)
LATTICE_LINT := edgecell-lattice-ctl edgecell-manifest-check edgecell-provider-common $(foreach p,$(PROVIDERS),edgecell-$(p)-provider)
LATTICE_CARGO := cd tools/lattice && CARGO_TARGET_DIR=$(LATTICE_TARGET_DIR) $(CARGO)

.PHONY: setup components build run test test-bins lattice-test-bins lattice-bins lint lint-main lint-lattice lint-components bench fmt fuzz clean-cache lattice e2e up deploy down pin bench-lattice

setup:
	@bash scripts/setup.sh

components: setup
	+$(CARGO) build --target wasm32-wasip2 --profile component $(addprefix -p ,$(COMPONENTS))

build: components
	$(CARGO) build --release -p edgecell

run: build
	$(TARGET_DIR)/release/edgecell run $(RUN_ARGS)

# Everything `make test` compiles is compiled first, by one make with JOBS slots that every
# cargo below shares (GNU make's jobserver; the `+` hands it over): the components, the lattice
# workspace and both workspaces' test binaries build side by side, so one's single-crate
# stretches (a big crate, a link) leave no core idle. Then the tests run.
# The lattice tests run after the others, one at a time: each starts NATS, wadm, a host and
# its providers, which takes the whole of a 2-core machine. Both steps select the whole
# workspace: cargo unifies features over the packages selected, and `-p edgecell-tests` alone
# would build wasmtime and others a second time.
# EDGECELL_REQUIRE_ONNXRUNTIME: the ONNX Runtime backend's tests fail instead of skipping when
# scripts/setup.sh could not unpack the library
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
test: setup
	$(MAKE) --no-print-directory -j$(JOBS) lattice test-bins lattice-test-bins
	EDGECELL_REQUIRE_ONNXRUNTIME=1 $(CARGO) test --release --workspace -- --skip lattice::
	EDGECELL_REQUIRE_LATTICE=1 $(CARGO) test --release --workspace --tests -- lattice:: --test-threads=1
	$(LATTICE_CARGO) test --release --locked $(addprefix -p ,$(LATTICE_TESTS))

# the host workspace's test binaries (the same build `cargo test` does before it runs them)
test-bins: setup
	+$(CARGO) test --release --workspace --no-run

lattice-test-bins: lattice-bins
	+$(LATTICE_CARGO) test --release --locked --no-run $(addprefix -p ,$(LATTICE_TESTS))

lattice-bins: setup
	+$(LATTICE_CARGO) build --release --locked $(addprefix -p ,$(LATTICE_PACKAGES))

# Provider archives are signed with the keys in PAR_KEYS (made there on first use; a release
# passes its own, kept private) and record an issue time: SOURCE_DATE_EPOCH when set, else the
# time of the last commit that touched that provider's directory, the providers' shared code or
# the WIT. The same binary then gives the same .par.gz bytes, so `make pin` moves a provider's
# digest when its binary or those sources changed, not on every build.
PAR_KEYS ?= $(CURDIR)/build/keys
par_issued_at = $(or $(SOURCE_DATE_EPOCH),$(shell git log -1 --format=%ct -- providers/$(1) providers/wasmcloud-common wit 2>/dev/null))

# the real lattice: host + wadm launchers, the three providers as .par.gz, components in build/
lattice: components lattice-bins
	mkdir -p build/components build/providers
	cp $(COMPONENT_DIR)/edgecell_probe.wasm $(COMPONENT_DIR)/edgecell_v2x_validator.wasm $(COMPONENT_DIR)/edgecell_sensor_fusion.wasm $(COMPONENT_DIR)/edgecell_video_analytics.wasm build/components/
	$(foreach p,$(PROVIDERS),$(LATTICE_BIN)/edgecell-lattice package --binary $(LATTICE_BIN)/edgecell-$(p)-provider --name edgecell-$(p) \
	  --out build/providers/edgecell-$(p).par.gz --keys $(PAR_KEYS) $(addprefix --issued-at ,$(call par_issued_at,$(p))) &&) true

e2e: lattice
	EDGECELL_REQUIRE_LATTICE=1 $(CARGO) test --release -p edgecell-tests --test all lattice:: -- --test-threads=1 --nocapture

# producer -> actor -> result latency on the real lattice, next to the host's echo (BENCHMARKS.md)
bench-lattice: lattice
	$(CARGO) bench -p edgecell-tests --bench lattice_latency

up: lattice
	@bash scripts/lattice.sh up

deploy:
	$(LATTICE_BIN)/edgecell-lattice deploy wadm/local.wadm.yaml

down:
	@bash scripts/lattice.sh down

# re-pin wadm/edgecell.wadm.yaml to the sha256 of the current build outputs (its NATS messaging
# is the host's built-in provider, which has no archive to pin)
pin: lattice
	$(LATTICE_BIN)/edgecell-manifest-check pin wadm/edgecell.wadm.yaml \
	  v2x-validator=build/components/edgecell_v2x_validator.wasm \
	  sensor-fusion=build/components/edgecell_sensor_fusion.wasm \
	  video-analytics=build/components/edgecell_video_analytics.wasm \
	  kv-cache=build/providers/edgecell-kv-cache.par.gz metrics=build/providers/edgecell-metrics.par.gz \
	  inference=build/providers/edgecell-inference.par.gz

# every lint; CI runs lint-main and lint-components (2.5 min and under a minute after a cold
# make test) but not lint-lattice, which checks the whole wasmCloud host stack again
lint: lint-components lint-main lint-lattice

lint-main: components
	$(CARGO) clippy --release --workspace --all-targets -- -D warnings

lint-lattice:
	$(LATTICE_CARGO) clippy --release --locked --all-targets $(addprefix -p ,$(LATTICE_LINT)) -- -D warnings

lint-components: setup
	$(CARGO) clippy --target wasm32-wasip2 --profile component $(addprefix -p ,$(COMPONENTS)) -- -D warnings

bench: components
	$(CARGO) bench --workspace $(BENCH_ARGS)

fmt:
	$(CARGO) fmt --all

# libFuzzer on the V2X decoders (stable toolchain); FUZZ_SECONDS per target
fuzz:
	scripts/fuzz.sh $(or $(FUZZ_SECONDS),600)

clean-cache:
	rm -rf $(TARGET_DIR)/edgecell-cache
