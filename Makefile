# ULW-SleepNet on microcontrollers. The two commands: `make demo` and `make test`.
# Every target that needs Python depends on `setup`, which is idempotent and offline once done.

SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
BUILD ?= build
SEED ?= 0
# Real Sleep-EDF hypnograms, when this checkout sits next to them; generated nights otherwise.
SHARED_HYPNOGRAMS ?= $(wildcard ../shared/sleep-edf/hypnograms)
DEMO_HYPNOGRAM := $(if $(SHARED_HYPNOGRAMS),$(SHARED_HYPNOGRAMS)/SC4001EC-Hypnogram.edf)

.PHONY: setup test lint format demo bench clean distclean

setup:
	@scripts/setup.sh

## test: lint + every test (offline after setup)
test: setup lint
	$(PY) -m pytest -q

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

## demo: simulate a Sleep-EDF-format night, load it, print its epochs per stage
demo: setup
	rm -rf $(BUILD)/demo/psg
	$(PY) -m training simulate $(if $(DEMO_HYPNOGRAM),--hypnograms $(DEMO_HYPNOGRAM)) \
		--nights 1 --seed $(SEED) --out $(BUILD)/demo/psg
	$(PY) -m training prepare $(BUILD)/demo/psg --out $(BUILD)/demo/cache

## bench: the data-path benchmark (targets: simulate <= 10 s, load <= 10 s, cached <= 3 s)
bench: setup
	$(PY) -m training bench-data $(if $(DEMO_HYPNOGRAM),--hypnogram $(DEMO_HYPNOGRAM)) --seed $(SEED)

clean:
	rm -rf $(BUILD) .pytest_cache .ruff_cache

distclean: clean
	rm -rf $(VENV)
