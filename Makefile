# inferno: make help lists the targets.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
PROTOS  := $(wildcard proto/*.proto)
STUBS   := $(PROTOS:.proto=_pb2.py)

.PHONY: help install proto test test-fast lint bench fuzz demo evaluate clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt '.[dev]'
	$(BIN)/pip check
	touch $@

install: $(STAMP)  ## create .venv and install the pinned dependencies

# Run from the repository root with -I. so proto/x.proto imports "proto/y.proto" and the stubs import
# `from proto import y_pb2`: no post-editing of generated code.
proto/%_pb2.py: proto/%.proto $(STAMP)
	$(BIN)/python -m grpc_tools.protoc -I. --python_out=. --pyi_out=. --grpc_python_out=. $<

proto: $(STUBS)  ## generate the gRPC stubs into proto/

test: install proto  ## run the whole test suite, e2e and slow tests included (installs what it needs)
	$(BIN)/python -m pytest -q

test-fast: install proto  ## the inner loop: every test but the e2e and slow ones (markers in pyproject.toml)
	$(BIN)/python -m pytest -q -m "not e2e and not slow"

lint: install  ## ruff check
	$(BIN)/ruff check .

bench: install proto  ## benchmarks: optimizer solve times, control-cycle latency, model fidelity, emulator capacity
	$(BIN)/python -m bench

fuzz: install proto  ## the long fuzz and fault campaigns (minutes): crashes, INTERNAL answers, absurd writes
	$(BIN)/python -m fuzz

demo: install proto  ## the whole control loop on the embedded local cluster (installs Prometheus if it can)
	bash hack/install-prometheus --optional
	$(BIN)/python -m demo

evaluate: install  ## run every simulator scenario under every policy and write docs/evaluation.md (+ figures)
	$(BIN)/python -m sim evaluate

clean:  ## remove generated stubs and the venv
	rm -rf $(VENV) proto/*_pb2*.py proto/*_pb2*.pyi
