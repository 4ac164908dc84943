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

.PHONY: setup test lint format demo demo-stream bench-host bench-edf-fuzz bench-stream bench-faults bench bench-train model convert firmware firmware-test firmware-fuzz bench-fuzz firmware-model rest-variants variant-cards robustness robustness-onchip clean distclean

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
	$(VENV)/bin/host_tools stream $$(ls $(BUILD)/demo/psg/*-PSG.edf | head -1) \
		--out $(BUILD)/bench-stream

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

## bench-train: one training epoch over the 35 simulated nights (target <= 60 s), with breakdown;
##              without the real hypnograms, over 20 generated nights (target in proportion)
TRAIN_COHORT := $(if $(SHARED_HYPNOGRAMS),$(BUILD)/sim35,$(BUILD)/gen20)
bench-train: setup $(TRAIN_COHORT)/.done
	$(if $(SHARED_HYPNOGRAMS),,@echo "note: timing 20 generated nights (at most 20 can be \
	generated), not the 35 nights of the README's figure, which $(NEEDS_HYPNOGRAMS)")
	$(PY) -m training bench-train --data $(TRAIN_COHORT) --cache $(BUILD)/cache

## model: retrain the shipped model (models/ulw_sleepnet) exactly as shipped (~20 min, 2 cores)
MODEL_SPLIT := --test-subjects 0,1,2,3 --val-subjects 4,5 --epochs 12 --seed 0 --compile
model: setup $(BUILD)/sim35/.done
	$(PY) -m training train --data $(BUILD)/sim35 --cache $(BUILD)/cache \
		--out $(BUILD)/runs/shipped $(MODEL_SPLIT)
	cp $(BUILD)/runs/shipped/split/model/{config.json,weights.pt,metrics.json} models/ulw_sleepnet/

## rest-variants: fine-tune the REST variants from the shipped model (docs/robustness.md, about
##                an hour on 2 cores), copy each into models/ulw_sleepnet_<v>, convert it
REST := $(BUILD)/rest
TRAIN_THREADS ?= 2
FINETUNE := $(PY) -m training finetune --data $(BUILD)/sim35 --cache $(BUILD)/cache \
	--threads $(TRAIN_THREADS)
REST_ATTACK := --augment rest-published --select-attack rest-published --eps-uv 10 --lambda-o 3e-3
GAUSS_OPTS := --augment gaussian --gaussian-c 0.2 --epochs 2 --samples-per-epoch 4000
REST_A_OPTS := $(REST_ATTACK) --epochs 4 --samples-per-epoch 1920
REST_AS_OPTS := $(REST_ATTACK) --adversarial-fraction 0.5 --lambda-g 1e-5 --lr 1e-3 --epochs 1 \
	--samples-per-epoch 4800 --prune-fraction 0.45 --prune-widths 4,8,16,32 --retrain-epochs 12
VARIANTS := gauss rest_a rest_as
rest-variants: setup $(BUILD)/sim35/.done
	$(FINETUNE) --init models/ulw_sleepnet --out $(REST)/gauss $(GAUSS_OPTS)
	$(FINETUNE) --init models/ulw_sleepnet --out $(REST)/rest_a $(REST_A_OPTS)
	$(FINETUNE) --init models/ulw_sleepnet --out $(REST)/rest_as $(REST_AS_OPTS)
	for v in $(VARIANTS); do \
		mkdir -p models/ulw_sleepnet_$$v && \
		cp $(REST)/$$v/model/{config.json,weights.pt,metrics.json} models/ulw_sleepnet_$$v/ && \
		$(PY) -m converter build --model models/ulw_sleepnet_$$v --out $(REST)/convert/$$v && \
		cp $(REST)/convert/$$v/{model_int8.tflite,model.onnx,engine_layers.json} \
			models/ulw_sleepnet_$$v/ || exit 1; \
	done
	$(MAKE) -s variant-cards

## variant-cards: firmware for each variant (emu-m4), its instruction counts, its MODEL_CARD.md
TITLE_gauss := Gaussian-noise augmentation (the "Ford" baseline of REST, unpruned)
TITLE_rest_a := REST(A): published attack + spectral term
TITLE_rest_as := REST(A+S): attack + spectral + sparsity, pruned
variant-cards: setup
	mkdir -p $(REST)/bench
	$(foreach v,$(VARIANTS),\
		$(MAKE) -s -C firmware BOARD=emu-m4 MODEL_DIR=$(abspath $(REST)/convert/$(v)) \
			BUILD=$(abspath $(REST)/firmware/$(v)) && \
		$(VENV)/bin/host_tools bench --firmware $(REST)/firmware/$(v)/firmware.elf --epochs 3 \
			--json > $(REST)/bench/$(v).json && \
		$(PY) -m training model-card --model models/ulw_sleepnet_$(v) --title '$(TITLE_$(v))' \
			--convert-report $(REST)/convert/$(v)/report.json --bench $(REST)/bench/$(v).json &&) true

## robustness: REST's noise evaluation of the shipped model and every variant, float and int8
##             (TFLite Micro), one table and plot in build/rest/robustness/all
ROBUSTNESS_OPTS := --max-epochs 1500 --adversarial-epochs 100 --write-adversarial
robustness: setup $(BUILD)/sim35/.done
	for v in baseline $(VARIANTS); do \
		m=models/ulw_sleepnet; [ $$v = baseline ] || m=$${m}_$$v; \
		$(PY) -m training robustness --model $$m --data $(BUILD)/sim35 --cache $(BUILD)/cache \
			--out $(REST)/robustness/$$v $(ROBUSTNESS_OPTS) || exit 1; \
	done
	$(PY) -m training robustness-table --out $(REST)/robustness/all \
		$(foreach v,baseline $(VARIANTS),--run $(v)=$(REST)/robustness/$(v))

## robustness-onchip: the same noisy and adversarial epochs streamed through the emulated board
##                    running each model (after `make robustness` and `make rest-variants`);
##                    fills the "on chip" columns of build/rest/robustness/all/table.md
ROBUSTNESS_ONCHIP_OPTS ?= --max-epochs 100
robustness-onchip: setup
	$(VENV)/bin/host_tools robustness --run $(REST)/robustness/baseline $(ROBUSTNESS_ONCHIP_OPTS)
	for v in $(VARIANTS); do \
		$(VENV)/bin/host_tools robustness --run $(REST)/robustness/$$v \
			--firmware $(REST)/firmware/$$v/firmware.elf $(ROBUSTNESS_ONCHIP_OPTS) || exit 1; \
	done
	$(PY) -m training robustness-table --out $(REST)/robustness/all \
		$(foreach v,baseline $(VARIANTS),--run $(v)=$(REST)/robustness/$(v))

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

## bench-fuzz: the long fuzzing run (10 minutes); executions, coverage and findings are printed
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
