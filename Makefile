# ULW-SleepNet on microcontrollers. The two commands: `make demo` and `make test`.
# Every target that needs Python depends on `setup`, which is idempotent and offline once done.

SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
BUILD ?= build
SEED ?= 0
# Real Sleep-EDF hypnograms, when this checkout sits next to them; generated nights otherwise.
# build/sim35, the cohort the shipped model and the REST study were trained and measured on, is
# simulated from the 35 hypnograms of Sleep-EDF-20 present in PhysioNet's sleep cassette
# (subjects 00-17; subject 13 has one night), SIM35_HYPNOGRAMS below. `make model`,
# `rest-variants` and `robustness` need them and refuse without (on other nights they would
# overwrite models/ with something else); `demo`, `bench`, `bench-stream`, `bench-faults` and
# `bench-train` fall back to generated nights and say so.
SHARED_HYPNOGRAMS ?= $(wildcard ../shared/sleep-edf/hypnograms)
DEMO_HYPNOGRAM := $(if $(SHARED_HYPNOGRAMS),$(SHARED_HYPNOGRAMS)/SC4001EC-Hypnogram.edf)
HYPNOGRAMS_URL := https://physionet.org/content/sleep-edfx/1.0.0/sleep-cassette/
SIM35_HYPNOGRAMS := SC4001EC SC4002EC SC4011EH SC4012EC SC4021EH SC4022EJ SC4031EC SC4032EP \
	SC4041EC SC4042EC SC4051EC SC4052EC SC4061EC SC4062EC SC4071EC SC4072EH SC4081EC SC4082EP \
	SC4091EC SC4092EC SC4101EC SC4102EC SC4111EC SC4112EC SC4121EC SC4122EV SC4131EC SC4141EU \
	SC4142EU SC4151EC SC4152EC SC4161EC SC4162EC SC4171EU SC4172EC
NEEDS_HYPNOGRAMS := needs the 35 real Sleep-EDF-20 hypnograms SC4001EC-Hypnogram.edf ... \
	SC4172EC-Hypnogram.edf (SIM35_HYPNOGRAMS in the Makefile: subjects 00-17 of the sleep cassette) \
	from $(HYPNOGRAMS_URL): download them into a folder DIR, then run make with SHARED_HYPNOGRAMS=DIR
NO_DEMO_HYPNOGRAM := note: using a generated night: the README's figures are of the night \
	simulated from the real SC4001EC-Hypnogram.edf ($(HYPNOGRAMS_URL); set SHARED_HYPNOGRAMS=DIR, \
	its folder)

.PHONY: setup test lint format demo demo-stream bench-cohort bench-scale bench-link bench-cycles bench-host bench-edf-fuzz bench-stream bench-faults bench bench-train model cv model-paper convert firmware firmware-test firmware-fuzz bench-fuzz firmware-model rest-variants variant-cards robustness robustness-onchip clean distclean

setup:
	@scripts/setup.sh

## test: lint + every test (offline after setup)
test: setup lint firmware firmware-test firmware-fuzz
	$(PY) -m pytest -q

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(MAKE) -s -C firmware format-check

format: setup
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .
	$(MAKE) -s -C firmware format

## demo: simulate a Sleep-EDF-format night from a real hypnogram, stream it through the
##       emulated Cortex-M4 board, compare with TFLite Micro, the float model and the expert
DEMO_PSG = $(firstword $(wildcard $(BUILD)/demo/psg/*-PSG.edf))
demo: setup
	$(if $(DEMO_HYPNOGRAM),,@echo "$(NO_DEMO_HYPNOGRAM)")
	rm -rf $(BUILD)/demo
	$(PY) -m training simulate $(if $(DEMO_HYPNOGRAM),--hypnograms $(DEMO_HYPNOGRAM)) \
		--nights 1 --seed $(SEED) --out $(BUILD)/demo/psg
	$(MAKE) -s demo-stream

demo-stream:
	$(VENV)/bin/host_tools stream $(DEMO_PSG) --out $(BUILD)/demo/stream

## bench-stream: the streaming benchmark (a whole night to emu-m4; target <= 150 s for ~1000
##               epochs, host CPU <= 5 ms per epoch): the figures are in the report it prints
bench-stream: setup
	$(if $(DEMO_HYPNOGRAM),,@echo "$(NO_DEMO_HYPNOGRAM)")
	test -n "$(DEMO_PSG)" || $(PY) -m training simulate $(if $(DEMO_HYPNOGRAM),--hypnograms \
		$(DEMO_HYPNOGRAM)) --nights 1 --seed $(SEED) --out $(BUILD)/demo/psg
	rm -rf $(BUILD)/bench-stream
	$(VENV)/bin/host_tools stream $$(ls $(BUILD)/demo/psg/*-PSG.edf | head -1) \
		--out $(BUILD)/bench-stream

## bench-cohort: the 35 simulated nights through 1, then 2 emulated boards (COHORT_BOARDS; each a
##               resumable cohort in build/bench-cohort/boards-N; hours on 2 cores): wall time,
##               epochs/s, scaling efficiency and where the CPU time goes
##               (COHORT_EPOCHS=N: the first N epochs of each night, in build/bench-cohort-N)
COHORT_BOARDS ?= 1 2
COHORT_DATA ?= $(BUILD)/sim35
COHORT_EPOCHS ?=
COHORT_OUT = $(BUILD)/bench-cohort$(if $(COHORT_EPOCHS),-$(COHORT_EPOCHS))
bench-cohort: setup $(BUILD)/sim35/.done
	for n in $(COHORT_BOARDS); do $(VENV)/bin/host_tools stream $(COHORT_DATA) --boards $$n \
		$(if $(COHORT_EPOCHS),--epochs $(COHORT_EPOCHS)) --cycles-sample 0 \
		--out $(COHORT_OUT)/boards-$$n --resume || exit 1; done
	$(PY) scripts/cohort_scaling.py $(addprefix $(COHORT_OUT)/boards-,$(COHORT_BOARDS))

## bench-link: the link coding (SAMPLES_RICE) on the 35 simulated nights: compression per channel
##             and overall, bytes per epoch raw vs coded (docs/protocol.md, "Coded samples")
bench-link: setup $(BUILD)/sim35/.done
	$(PY) scripts/link_ratio.py $(BUILD)/sim35 --json $(BUILD)/bench-link.json

## bench-scale: a Sleep-EDF-78-sized cohort (SCALE_NIGHTS generated nights) simulated and
##              prepared with --jobs SCALE_JOBS, one training epoch's peak memory, cache load
##              time (docs/data.md; resumable, about an hour on 2 cores)
SCALE_NIGHTS ?= 153
SCALE_JOBS ?= 2
bench-scale: setup
	$(PY) -m training bench-scale --work $(BUILD)/bench-scale --nights $(SCALE_NIGHTS) \
		--jobs $(SCALE_JOBS)

## bench-faults: the reliability benchmark: a simulated night to emu-m4 with 1 % of the bytes
##               corrupted and 0.5 % dropped, both ways (FAULT_EPOCHS=N for the first N epochs);
##               prints faults injected, retries, epochs scored (every one, exactly once) and
##               bit-exactness against TFLite Micro
bench-faults: setup
	$(if $(DEMO_HYPNOGRAM),,@echo "$(NO_DEMO_HYPNOGRAM)")
	test -n "$(DEMO_PSG)" || $(PY) -m training simulate $(if $(DEMO_HYPNOGRAM),--hypnograms \
		$(DEMO_HYPNOGRAM)) --nights 1 --seed $(SEED) --out $(BUILD)/demo/psg
	rm -rf $(BUILD)/bench-faults
	$(VENV)/bin/host_tools stream $$(ls $(BUILD)/demo/psg/*-PSG.edf | head -1) \
		--faults corrupt=0.01,drop=0.005,seed=$(SEED) $(if $(FAULT_EPOCHS),--epochs $(FAULT_EPOCHS)) \
		--out $(BUILD)/bench-faults

## bench-host: the host-tools-only install (target: a fresh venv with only '.[host]' <= 300 MB, no
##             torch or TensorFlow, a night streamed bit-exact through emu-m4 from the wheel)
bench-host: setup
	scripts/bench_host_venv.sh

## bench-edf-fuzz: the long header-mutation fuzz of the PSG reader (5 minutes): executions,
##                 refusal reasons and findings printed, non-zero exit on any finding
bench-edf-fuzz: setup
	$(PY) scripts/fuzz_edf.py --seconds 300 --seed 0

## bench: the data-path benchmark (targets: simulate <= 10 s, load <= 10 s, cached <= 3 s)
bench: setup
	$(if $(DEMO_HYPNOGRAM),,@echo "$(NO_DEMO_HYPNOGRAM)")
	$(PY) -m training bench-data $(if $(DEMO_HYPNOGRAM),--hypnogram $(DEMO_HYPNOGRAM)) --seed $(SEED)

## bench-cycles: estimated Cortex-M4 cycles of 5 epochs on emu-m4, per epoch and layer, both
##               memory settings (docs/cycles.md), and the microbenchmarks against hand counts
bench-cycles: setup firmware
	$(VENV)/bin/host_tools bench --cycles --epochs 5
	$(PY) -m pytest -q tests/cycles/test_microbench.py

## bench-train: one training epoch over the 35 simulated nights (target <= 60 s), with breakdown;
##              without the real hypnograms, over 20 generated nights (target in proportion)
TRAIN_COHORT := $(if $(SHARED_HYPNOGRAMS),$(BUILD)/sim35,$(BUILD)/gen20)
bench-train: setup $(TRAIN_COHORT)/.done
	$(if $(SHARED_HYPNOGRAMS),,@echo "note: timing 20 generated nights (at most 20 can be \
	generated), not the 35 nights of the README's figure, which $(NEEDS_HYPNOGRAMS)")
	$(PY) -m training bench-train --data $(TRAIN_COHORT) --cache $(BUILD)/cache

## model: retrain the shipped model (models/ulw_sleepnet) exactly as shipped (~20 min, 2 cores)
MODEL_OPTS := --epochs 12 --seed 0 --compile
MODEL_SPLIT := --test-subjects 0,1,2,3 --val-subjects 4,5 $(MODEL_OPTS)
model: setup $(BUILD)/sim35/.done
	$(PY) -m training train --data $(BUILD)/sim35 --cache $(BUILD)/cache \
		--out $(BUILD)/runs/shipped $(MODEL_SPLIT)
	cp $(BUILD)/runs/shipped/split/model/{config.json,weights.pt,metrics.json} models/ulw_sleepnet/

## cv: subject-wise 5-fold cross-validation of the shipped configuration over the 35 simulated
##     nights: per fold, pooled and mean +- std in build/runs/cv/cv_report.md (~2 h on 2 cores;
##     resumable: re-run to continue)
cv: setup $(BUILD)/sim35/.done
	$(if $(SHARED_HYPNOGRAMS),,$(error cv $(NEEDS_HYPNOGRAMS)))
	$(PY) -m training train --data $(BUILD)/sim35 --cache $(BUILD)/cache \
		--out $(BUILD)/runs/cv --folds 5 $(MODEL_OPTS)

## model-paper: the shipped split trained with ULW-SleepNet's original recipe (training/recipes.py:
##              batch 32, 50 epochs, Adam amsgrad with warm restarts, Glorot, Keras BatchNorm
##              momentum, checkpoint by validation accuracy) in build/runs/paper
model-paper: setup $(BUILD)/sim35/.done
	$(if $(SHARED_HYPNOGRAMS),,$(error model-paper $(NEEDS_HYPNOGRAMS)))
	$(PY) -m training train --data $(BUILD)/sim35 --cache $(BUILD)/cache --out $(BUILD)/runs/paper \
		--recipe paper --test-subjects 0,1,2,3 --val-subjects 4,5 --seed 0 --compile

## rest-variants: REST's compared models (paper section 4.2) built from the shipped baseline:
##                Liu, Ford, REST(A), REST(A+S) (and the baseline's extra seeds), copied to
##                models/ulw_sleepnet_<v>; converted, measured on emu-m4, with a MODEL_CARD.md
##                each (docs/robustness.md; hours on 2 cores: resumable, re-run to continue)
REST := $(BUILD)/rest
TRAIN_THREADS ?= 2
REST_SEEDS ?= 0 1 2
# What every compressed model shares (docs/robustness.md, "The study"): sparsity training with
# the model's own terms, one global threshold removing 80 % of the DSSC channels (>= 10 % per
# layer, rounded up to the engine's widths), retraining without the sparsity term; every
# checkpoint selected on the mean of clean and paper-attack (eq. 2, eps 6) validation macro-F1.
SLIM_OPTS := --optimizer sgd --lr 1e-2 --lambda-g 0.12 --epochs 4 --samples-per-epoch 4800 \
	--prune-fraction 0.8 --prune-min-fraction 0.1 --prune-widths 4,8,16,32 --retrain-epochs 4 \
	--select-attack paper
REST_STUDY = PY=$(PY) DATA=$(BUILD)/sim35 CACHE=$(BUILD)/cache REST=$(REST) \
	THREADS=$(TRAIN_THREADS) REST_SEEDS="$(REST_SEEDS)" SLIM_OPTS="$(SLIM_OPTS)" \
	BASELINE_OPTS="$(filter-out --seed 0,$(MODEL_SPLIT))" ROBUSTNESS_OPTS="$(ROBUSTNESS_OPTS)" \
	HOST_TOOLS=$(VENV)/bin/host_tools scripts/rest_study.sh
rest-variants: setup $(BUILD)/sim35/.done
	$(if $(SHARED_HYPNOGRAMS),,$(error rest-variants $(NEEDS_HYPNOGRAMS)))
	$(REST_STUDY) train
	$(MAKE) -s variant-cards

## variant-cards: convert every model of the study, its emu-m4 firmware, instruction counts and
##                MODEL_CARD.md
variant-cards: setup
	$(REST_STUDY) cards

## robustness: REST's noise evaluation (Table 4) of every model and seed, float and int8 (TFLite
##             Micro); tables (study.md: mean +- std over seeds) in build/rest/robustness/all
ROBUSTNESS_OPTS := --max-epochs 1500 --adversarial-epochs 100 --write-adversarial
robustness: setup $(BUILD)/sim35/.done
	$(REST_STUDY) evaluate
	$(REST_STUDY) table

## robustness-onchip: the same noisy and adversarial epochs (seed 0 of each model) streamed
##                    through the emulated board running it (Blanco: the Liu firmware fed the
##                    band-passed samples; after `make robustness` and `make variant-cards`);
##                    fills the "on chip" tables
ROBUSTNESS_ONCHIP_OPTS ?= --max-epochs 100
ONCHIP_VARIANTS := liu blanco ford rest_a rest_as
robustness-onchip: setup
	$(VENV)/bin/host_tools robustness --run $(REST)/robustness/baseline/seed-0 $(ROBUSTNESS_ONCHIP_OPTS)
	for v in $(ONCHIP_VARIANTS); do \
		$(VENV)/bin/host_tools robustness --run $(REST)/robustness/$$v/seed-0 \
			--firmware $(REST)/firmware/$${v/blanco/liu}/firmware.elf $(ROBUSTNESS_ONCHIP_OPTS) \
			|| exit 1; \
	done
	$(REST_STUDY) table

## convert: ONNX, int8 TFLite, C for the firmware and a verified report (build/model)
convert: setup
	$(PY) -m converter build --model models/ulw_sleepnet --out $(BUILD)/model

## firmware: build every board (firmware/build/<board>/firmware.elf, sizes printed)
BOARDS := emu-m4 emu-an386 nucleo-l476rg
firmware:
	for b in $(BOARDS); do $(MAKE) -s -C firmware BOARD=$$b || exit 1; done

## firmware-fuzz: fuzz the firmware's receive path on the host for 20 s (libFuzzer, ASan, UBSan)
firmware-fuzz: setup
	$(MAKE) -s -C firmware fuzz FUZZ_SECONDS=20

## bench-fuzz: the long fuzzing runs (20 minutes): the receive path, then the SAMPLES_RICE decoder
##             alone, 600 s each; executions, coverage and findings are printed
bench-fuzz: setup
	$(MAKE) -s -C firmware fuzz FUZZ_SECONDS=600

## firmware-test: the on-target unit tests (firmware/test) on both emulated boards, in QEMU
firmware-test:
	for b in emu-m4 emu-an386; do $(MAKE) -s -C firmware test BOARD=$$b || exit 1; done

## firmware-model: regenerate the committed model C and .tflite from models/ulw_sleepnet
firmware-model: convert
	cp $(BUILD)/model/engine_model.c $(BUILD)/model/engine_model.h $(BUILD)/model/model_norm.h \
		firmware/engine/model/
	cp $(BUILD)/model/model_int8.tflite $(BUILD)/model/model.onnx $(BUILD)/model/engine_layers.json \
		models/ulw_sleepnet/

# The simulated cohort: one night per real Sleep-EDF-20 hypnogram, from exactly the 35 files of
# SIM35_HYPNOGRAMS (a folder of links to them: SHARED_HYPNOGRAMS may hold more).
$(BUILD)/sim35/.done:
	@test -n "$(SHARED_HYPNOGRAMS)" || { echo "error: make $(MAKECMDGOALS) $(NEEDS_HYPNOGRAMS)" >&2; exit 2; }
	@missing=$$(for h in $(SIM35_HYPNOGRAMS); do \
		[ -f "$(SHARED_HYPNOGRAMS)/$$h-Hypnogram.edf" ] || echo $$h-Hypnogram.edf; done | paste -sd' '); \
	test -z "$$missing" || { echo "error: $(SHARED_HYPNOGRAMS) lacks $$missing;" \
		"make $(MAKECMDGOALS) $(NEEDS_HYPNOGRAMS)" >&2; exit 2; }
	rm -rf $(BUILD)/hypnograms35 && mkdir -p $(BUILD)/hypnograms35
	for h in $(SIM35_HYPNOGRAMS); do \
		ln -s $(abspath $(SHARED_HYPNOGRAMS))/$$h-Hypnogram.edf $(BUILD)/hypnograms35/ || exit 1; \
	done
	$(PY) -m training simulate --hypnograms $(BUILD)/hypnograms35 --out $(BUILD)/sim35 --seed 0
	touch $@

# Generated nights, where the real hypnograms are missing (20: subjects 90-99, two nights each).
$(BUILD)/gen20/.done:
	$(PY) -m training simulate --nights 20 --out $(BUILD)/gen20 --seed 0
	touch $@

clean:
	rm -rf $(BUILD) .pytest_cache .ruff_cache

distclean: clean
	rm -rf $(VENV)
