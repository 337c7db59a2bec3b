# pyagent: build the pinned OPA, run the policy loop and the Python suite.
include versions.mk

SHELL := /bin/bash
ROOT := $(abspath .)
TOOLS := $(ROOT)/.tools/bin
PYTHON ?= python3
VENV := $(ROOT)/.venv
PY := $(VENV)/bin/python
# A matching `opa` already on PATH is reused; otherwise the pinned one is built here.
OPA := $(shell if command -v opa >/dev/null 2>&1 && opa version 2>/dev/null | grep -qx "Version: $(OPA_VERSION)"; then command -v opa; else echo $(TOOLS)/opa; fi)
POLICY_DIRS := policies/rego policies/data
COVERAGE_MIN := 95
BUNDLE := build/bundle.tar.gz
# The bundle's revision is the policy data's (data.pyagent.revision), so decisions and bundle agree.
POLICY_REVISION := $(shell sed -n 's/^revision: *"\(.*\)"/\1/p' policies/data/pyagent/data.yaml)
EXAMPLE ?= examples/reports/eu-commission-personal-enrolled-tiktok.json

export PYAGENT_OPA := $(OPA)
export PYAGENT_ORAS := $(TOOLS)/oras
export PYAGENT_BUNDLE := $(ROOT)/$(BUNDLE)

.PHONY: all opa oras venv policy package-bundle dist browser services test test-policy test-python lint lint-policy lint-python fmt fmt-python check-example bench fuzz clean

all: test

## opa: build the pinned OPA from the Go module proxy (no-op when already there)
opa: $(OPA)

$(TOOLS)/opa: versions.mk
	@mkdir -p $(TOOLS)
	@if [ -x $@ ] && $@ version | grep -qx "Version: $(OPA_VERSION)"; then \
	  echo "opa $(OPA_VERSION) already built"; touch $@; \
	else \
	  command -v go >/dev/null || { echo "building opa v$(OPA_VERSION) needs Go (go is not on PATH): install Go, or give the path of a pinned opa in PYAGENT_OPA" >&2; exit 2; }; \
	  echo "building opa v$(OPA_VERSION) with $$(go version)"; \
	  GOBIN=$(TOOLS) GOFLAGS=-buildvcs=false go install github.com/open-policy-agent/opa@v$(OPA_VERSION); \
	fi

## oras: build the pinned oras (OCI registry client, for the agent's OCI tests) from the Go module proxy
oras: $(TOOLS)/oras

$(TOOLS)/oras: versions.mk
	@mkdir -p $(TOOLS)
	@if [ -x $@ ] && $@ version | grep -qx "Version: *$(ORAS_VERSION)"; then \
	  echo "oras $(ORAS_VERSION) already built"; touch $@; \
	else \
	  command -v go >/dev/null || { echo "building oras v$(ORAS_VERSION) needs Go (go is not on PATH): install Go" >&2; exit 2; }; \
	  echo "building oras v$(ORAS_VERSION) with $$(go version)"; \
	  GOBIN=$(TOOLS) GOFLAGS=-buildvcs=false go install oras.land/oras/cmd/oras@v$(ORAS_VERSION); \
	fi

## venv: the Python environment with pyagent and its test tools
venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $@

## policy: the compiled (wasm) bundle used by the embedded engine
policy: $(BUNDLE)

# What `pyagent policy bundle` builds (the ban index under data.pyagent_index included, so a check does
# not rebuild it), from every file and directory under policies/ (a deleted file rebuilds it too) and the
# code that builds it (when this is a checkout: a copy with pyagent installed from a package has no source).
BUNDLE_INPUTS := $(shell find policies 2>/dev/null) $(wildcard pyagent/bundles/build.py pyagent/policy/index.py pyagent/policy/staging.py)

$(BUNDLE): $(OPA) $(VENV)/.installed $(BUNDLE_INPUTS)
	@mkdir -p build
	$(PY) -m pyagent policy bundle -o $@ --revision "$(POLICY_REVISION)"

## package-bundle: the bundle a wheel ships, what `pyagent policy bundle` builds (setup.py: make package-bundle
## DEST=FILE BUILD_PYTHON=ITS_PYTHON); an sdist build has only setuptools and PyYAML, so the staging root
## comes from pyagent.policy.staging (standard library and PyYAML) and the pinned opa builds it
BUILD_PYTHON ?= $(PYTHON)
package-bundle: $(OPA)
	@test -n "$(DEST)" || { echo "make package-bundle: give DEST=FILE" >&2; exit 2; }
	@$(OPA) version | grep -qx "Version: $(OPA_VERSION)" || \
	  { echo "$(OPA) is not the pinned opa $(OPA_VERSION) (versions.mk): run make opa, or unset PYAGENT_OPA" >&2; exit 2; }
	@mkdir -p "$(dir $(DEST))"
	@stage="$$(mktemp -d)/bundle" && trap 'rm -rf "$$(dirname "$$stage")"' EXIT && \
	  $(BUILD_PYTHON) -m pyagent.policy.staging "$$stage" "$(POLICY_REVISION)" $(POLICY_DIRS) && \
	  dest="$(abspath $(DEST))" && opa="$$(realpath -e "$$(command -v "$(OPA)")")" && cd "$$stage" && \
	  "$$opa" build -b -t wasm -e pyagent/decision --ignore '*_test.rego' --revision "$(POLICY_REVISION)" -o "$$dest" .

## dist: the sdist and the wheel (the compiled policy inside) in build/dist/; the wheel is built from the sdist
dist: venv $(OPA)
	rm -rf build/dist
	$(PY) -m build --outdir build/dist .
	@ls -l build/dist

## test: policy tests with coverage, then the Python suite
test: test-policy test-python

test-policy: $(OPA)
	$(OPA) test $(POLICY_DIRS)
	@mkdir -p build
	$(OPA) test $(POLICY_DIRS) --coverage --format json > build/coverage.json
	@$(PYTHON) -c 'import json,sys; c=json.load(open("build/coverage.json"))["coverage"]; print(f"rego coverage: {c:.2f}% (minimum $(COVERAGE_MIN)%)"); sys.exit(0 if c >= $(COVERAGE_MIN) else 1)'

## browser: Debian's headless Chromium, for the HTML report tests (no-op when present)
browser:
	@if [ -x /usr/bin/chromium ] || [ -n "$$PYAGENT_CHROMIUM" ]; then echo "chromium present"; \
	elif [ "$$(id -u)" != 0 ]; then echo "make browser: Debian's chromium is missing: apt-get install chromium as root (or set PYAGENT_CHROMIUM to a chromium)" >&2; exit 2; \
	else apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null && echo "chromium installed"; fi

## services: Debian's PostgreSQL, nginx and docker-registry (an OCI registry), for the server and agent
## tests (no-op when present). The tests start their own throwaway instances: a temporary policy-rc.d
## keeps the packages from starting system services.
services:
	@missing=; \
	command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing=postgresql; \
	command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing="$$missing nginx"; \
	[ -x /usr/bin/docker-registry ] || missing="$$missing docker-registry"; \
	if [ -z "$$missing" ]; then echo "postgresql, nginx and docker-registry present"; exit 0; fi; \
	if [ "$$(id -u)" != 0 ]; then echo "make services: missing Debian packages:$$missing: apt-get install them as root" >&2; exit 2; fi; \
	policy=; if [ ! -e /usr/sbin/policy-rc.d ]; then policy=/usr/sbin/policy-rc.d; \
	  printf '#!/bin/sh\nexit 101\n' > $$policy && chmod +x $$policy; fi; \
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	rc=$$?; [ -z "$$policy" ] || rm -f $$policy; \
	[ $$rc -eq 0 ] && echo "installed:$$missing (system services not started)"; exit $$rc

test-python: venv policy browser services oras
	$(PY) -m pytest -q -n auto --maxprocesses 4 --dist loadfile

## fuzz: the property-based fuzz tests, long (PYAGENT_FUZZ_EXAMPLES examples per property)
FUZZ_EXAMPLES ?= 20000
fuzz: venv policy
	PYAGENT_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(PY) -m pytest -q tests/fuzz tests/collectors/test_collectors_fuzz.py \
	  tests/report -k "fuzz or hypothesis or generated or mutated or agree or crafted or homoglyph"
	@cat build/fuzz-counts.json

## lint: opa fmt (no diff), opa check --strict, Regal when present, ruff (check and format) and mypy
lint: lint-policy lint-python

lint-policy: $(OPA) venv
	@out=$$($(OPA) fmt --list $(POLICY_DIRS)); if [ -n "$$out" ]; then echo "opa fmt would change:"; echo "$$out"; exit 1; fi
	$(OPA) check --strict $(POLICY_DIRS)
	$(PY) -m pyagent policy lint $(POLICY_DIRS)  # and the policy data: schemas/policy-data.schema.json, cross-checks
	@if command -v regal >/dev/null 2>&1; then regal lint policies/rego; \
	else echo "regal: not installed (the Go module proxy does not serve it); opa fmt and opa check --strict ran"; fi

lint-python: venv
	$(VENV)/bin/ruff check pyagent tests bench
	$(VENV)/bin/ruff format --check pyagent tests bench
	$(VENV)/bin/mypy

fmt: $(OPA)
	$(OPA) fmt -w $(POLICY_DIRS)

## fmt-python: ruff format (make lint checks it)
fmt-python: venv
	$(VENV)/bin/ruff format pyagent tests bench

## check-example: the main job on a fresh machine, a device check on the embedded engine
check-example: venv policy
	$(VENV)/bin/pyagent check $(EXAMPLE) --at 2023-03-16T09:30:00Z; rc=$$?; echo "exit code $$rc"; [ $$rc -le 1 ]

bench: venv policy services
	$(PY) -m bench.run

clean:
	rm -rf build
