# twin — every stage is one `twin` command; every target installs the venv first when missing.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV    := .venv
PY      := $(VENV)/bin/python
TWIN    := $(VENV)/bin/twin
STAMP   := $(VENV)/.installed
PYTHON3 ?= python3

RAW       ?= data/raw
PROCESSED ?= data/processed
CONFIG    ?= pipelines/tiny.yaml
RUN       ?= demo
TINY      ?= checkpoints/tiny-falcon
# Empty: eval, merge and serve use the base recorded in the adapter's twin.json (checked by fingerprint).
BASE      ?=
BASE_OPT   = $(if $(BASE),--base $(BASE))
ADAPTER   ?= checkpoints/adapters/$(RUN)
MODEL     ?= tiiuae/falcon-7b
SAMPLE    ?= data/sample/result.json
HOST      ?= 127.0.0.1
PORT      ?= 8000
CHAT_PORT ?= 8501
DEMO_SERVE ?= 1

.PHONY: help install export export-telegram export-desktop import-desktop prepare tiny download train serve chat drafts eval merge gguf \
        demo test test-fast lint bench bench-7b browser go llama-cpp clean

help:  ## list targets
	@grep -E '^[a-z-]+:.*## ' Makefile | sed 's/:.*## /\t/' | column -t -s $$'\t'

# setuptools prints an "Editable installation ... be careful with folders" notice on every editable
# install; nothing in it is for the user to act on.
QUIET_EDITABLE := PYTHONWARNINGS="ignore:Editable installation"
# pip at errors only: a machine's pip config naming an index folder that is not there prints a
# "Location ... is ignored" warning per package; a failed install still prints its error and stops make.
PIP_INSTALL := $(PY) -m pip install -qq

# torch first, pinned: it takes the local CPU wheel; unpinned, pip would pull the CUDA build.
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON3) -m venv $(VENV)
	$(PIP_INSTALL) --upgrade pip
	$(PIP_INSTALL) "torch==2.13.0"
	$(QUIET_EDITABLE) $(PIP_INSTALL) -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)  ## create .venv with the `twin` command (idempotent)

# Getting chats in is "export" everywhere (Telegram's own word): `twin export telegram|desktop`.
export-telegram: $(STAMP)  ## pull private chats through the Telegram API (needs TELEGRAM_API_ID/HASH)
	$(TWIN) export telegram --out $(RAW) $(ARGS)

export-desktop: $(STAMP)  ## read a Telegram Desktop JSON export: make export-desktop FILE=result.json
	@test -n "$(FILE)" || { echo "usage: make export-desktop FILE=path/to/result.json"; exit 2; }
	$(TWIN) export desktop "$(FILE)" --out $(RAW) $(ARGS)

export: export-telegram  ## same as export-telegram
import-desktop: export-desktop  ## same as export-desktop

prepare: $(STAMP)  ## raw messages -> train/val examples (PII scrubbed)
	$(TWIN) prepare --raw $(RAW) --out $(PROCESSED) $(ARGS)

tiny: $(STAMP)  ## build the tiny Falcon base used by the demo and tests
	$(TWIN) model tiny --out $(TINY) $(ARGS)

download: $(STAMP)  ## fetch a base model from the hub (needs internet): make download MODEL=tiiuae/falcon-7b; gated (meta-llama/*): `hf auth login` (or HF_TOKEN) and accept the license on its page first
	$(TWIN) model download $(MODEL) $(ARGS)

train: $(STAMP)  ## LoRA fine-tune: make train CONFIG=pipelines/tiny.yaml RUN=name
	$(TWIN) train --config $(CONFIG) --data $(PROCESSED) --run $(RUN) $(BASE_OPT) $(ARGS)

serve: $(STAMP)  ## REST server: POST /reply
	$(TWIN) serve $(BASE_OPT) --adapter $(ADAPTER) --host $(HOST) --port $(PORT) $(ARGS)

chat: $(STAMP)  ## Streamlit chat page talking to the server
	$(TWIN) chat --server http://$(HOST):$(PORT) --port $(CHAT_PORT) $(ARGS)

drafts: $(STAMP)  ## the twin writes reply drafts in your Telegram chats: make drafts ARGS="--chat @name"
	$(TWIN) drafts --server $(or $(TWIN_SERVER_URL),http://$(HOST):$(PORT)) $(ARGS)

eval: $(STAMP)  ## base vs twin on val.jsonl -> checkpoints/runs/$(RUN)/report.html
	$(TWIN) eval $(BASE_OPT) --adapter $(ADAPTER) --data $(PROCESSED) --run $(RUN) $(ARGS)

merge: $(STAMP)  ## adapter merged into the base as a plain HF model dir
	$(TWIN) publish merge $(BASE_OPT) --adapter $(ADAPTER) --out checkpoints/merged/$(RUN) $(ARGS)

gguf: $(STAMP)  ## merged model -> GGUF + Ollama Modelfile
	$(TWIN) publish gguf --model checkpoints/merged/$(RUN) --out checkpoints/gguf/$(RUN) $(ARGS)

demo: $(STAMP)  ## the whole pipeline on the bundled sample (DEMO_SERVE=0: skip the servers)
	$(TWIN) demo --serve $(DEMO_SERVE) --host $(HOST) --port $(PORT) --chat-port $(CHAT_PORT) $(ARGS)

# llama.cpp's Python binding, so tests/test_gguf.py also runs the exported GGUF in llama.cpp.
# It compiles from source (~9 min on 2 cores, once; pip caches the wheel), so `make test` does not
# wait for it; .ci/run does. Best effort: if it cannot build, that test skips and says why.
llama-cpp: $(STAMP)  ## optional: build llama-cpp-python for the GGUF round-trip test
	@$(PY) -c "import llama_cpp" 2>/dev/null || { echo "building llama-cpp-python (one time, several minutes) ..."; \
	  CMAKE_ARGS="-DGGML_NATIVE=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF" CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) \
	  $(QUIET_EDITABLE) timeout 1800 $(PIP_INSTALL) -e ".[gguf-check]" \
	  || echo "note: could not build llama-cpp-python; the GGUF generation test will skip with a reason"; }

# Debian's Chromium for the one real-browser test; best effort (the test says why it skips).
browser:
	@command -v chromium >/dev/null 2>&1 || { (apt-get update -qq && DEBIAN_FRONTEND=noninteractive DEBCONF_NOWARNINGS=yes apt-get install -y -qq chromium >/dev/null) \
	  || echo "note: could not install chromium; the browser test will skip with a reason"; }

# Go's text/template, to check the Ollama Modelfile renders exactly twin's prompt; best effort (~20 s).
go:
	@command -v go >/dev/null 2>&1 || { (apt-get update -qq && DEBIAN_FRONTEND=noninteractive DEBCONF_NOWARNINGS=yes apt-get install -y -qq golang-go >/dev/null) \
	  || echo "note: could not install Go; the Modelfile template test will skip with a reason"; }

test: $(STAMP) browser go  ## the test suite
	$(PY) -m pytest -q $(ARGS)

# Slow = trains, serves or spawns processes (tests/conftest.py marks tests built on trained fixtures).
test-fast: $(STAMP)  ## the fast lane: pure and in-process tests, no training or servers
	$(PY) -m pytest -q -m "not slow" $(ARGS)

lint: $(STAMP)  ## ruff
	$(PY) -m ruff check twin tests web bench devkit
	$(PY) -m ruff format --check twin tests web bench devkit

bench: $(STAMP)  ## benchmarks -> bench/RESULTS.md (not part of `make test`)
	$(PY) -m bench $(ARGS)

bench-7b: $(STAMP)  ## Falcon-7B-shaped random bases on this CPU: train/eval (2, 4 layers), serve/merge (32); ~14 GB in bench/out
	nice $(PY) -m bench.bench_7b $(ARGS)

clean:  ## remove generated data and checkpoints (keeps .venv and data/sample)
	rm -rf $(RAW) $(PROCESSED) checkpoints/adapters checkpoints/runs checkpoints/merged checkpoints/gguf checkpoints/tiny-falcon data/demo checkpoints/demo
