#!/usr/bin/env bash
# The REST study (docs/robustness.md): the paper's six compared models built from the shipped
# baseline, converted, measured on the emulated board, evaluated under noise, tabulated.
#
#   scripts/rest_study.sh train      fine-tune Liu, Ford, REST(A), REST(A+S) (and train the
#                                    baseline's extra seeds); copy seed 0 of each to models/
#   scripts/rest_study.sh cards      convert every model, build its emu-m4 firmware, count its
#                                    instructions, write models/ulw_sleepnet_<v>/MODEL_CARD.md
#   scripts/rest_study.sh evaluate   the noise evaluation of every model and seed (and Blanco)
#   scripts/rest_study.sh table      build/rest/robustness/all/{table.md,study.md,macro_f1.png}
#                                    and build/rest/models.md (sizes and costs side by side)
#   scripts/rest_study.sh all        the four in order
#
# Every step is resumable: a finished output is skipped, an interrupted training run continues
# from its checkpoint. Finished models are kept in the repository, so that a study completes in
# pieces even from a fresh clone: seed 0 of each model in models/ulw_sleepnet_<v>, the extra
# seeds in models/seeds/<v>-seed<S> (config.json, weights.pt, metrics.json), each with the
# options it was trained with (training_options.txt); a model whose options match is not
# trained again. Settings come from the environment (the Makefile passes them):
# PY, DATA, CACHE, REST (output root), THREADS, REST_SEEDS (seeds of baseline, REST(A),
# REST(A+S); Liu and Ford use the first), SLIM_OPTS (the options every compressed model shares),
# BASELINE_OPTS (the shipped model's training options, without --seed), ROBUSTNESS_OPTS.
set -euo pipefail

PY=${PY:-.venv/bin/python}
DATA=${DATA:-build/sim35}
CACHE=${CACHE:-build/cache}
REST=${REST:-build/rest}
THREADS=${THREADS:-2}
REST_SEEDS=${REST_SEEDS:-0 1 2}
HOST_TOOLS=${HOST_TOOLS:-.venv/bin/host_tools}
: "${SLIM_OPTS:?SLIM_OPTS: the shared fine-tuning options (see the Makefile)}"
: "${BASELINE_OPTS:?BASELINE_OPTS: the training options of the shipped model (see the Makefile)}"
ROBUSTNESS_OPTS=${ROBUSTNESS_OPTS:-}

# The paper's models (section 4.2) and what each adds to SLIM_OPTS. Blanco is the Liu model with
# a test-time band-pass: it has no training of its own.
COMPRESSED="liu ford rest_a rest_as"
declare -A OPTS=(
	[liu]="--augment none"
	[ford]="--augment gaussian --gaussian-c 0.2"
	[rest_a]="--augment paper --eps-uv 10"
	[rest_as]="--augment paper --eps-uv 10 --lambda-o 3e-3"
)
declare -A TITLE=(
	[liu]="Liu: network slimming (sparsity, 80 % pruning, retraining), clean data"
	[ford]="Ford: Gaussian-noise augmentation (c_g 0.2) + network slimming"
	[rest_a]="REST(A): adversarial training (paper eq. 2) + sparsity, pruned, no spectral term"
	[rest_as]="REST(A+S): adversarial training (paper eq. 2) + spectral + sparsity, pruned"
)
first_seed=${REST_SEEDS%% *}

seeds_of() { # the seeds a model is trained with
	case $1 in
	baseline | rest_a | rest_as) echo "$REST_SEEDS" ;;
	*) echo "$first_seed" ;;
	esac
}

SEEDS=${SEEDS:-models/seeds} # the extra seeds' finished models

model_dir() { # MODEL SEED -> its model folder (seed 0: the shipped one under models/)
	if [ "$1" = blanco ]; then
		echo models/ulw_sleepnet_blanco
	elif [ "$2" = "$first_seed" ]; then
		[ "$1" = baseline ] && echo models/ulw_sleepnet || echo "models/ulw_sleepnet_$1"
	else
		echo "$SEEDS/$1-seed$2"
	fi
}

options_of() { # MODEL SEED -> the options its training runs with
	if [ "$1" = baseline ]; then
		echo "train $BASELINE_OPTS --seed $2"
	else
		echo "finetune $SLIM_OPTS ${OPTS[$1]} --seed $2"
	fi
}

trained() { # MODEL SEED: whether its model folder holds a finished model trained with the
	# study's options (an interrupted run has the weights of its best epoch so far in build/rest,
	# never here)
	local dir
	dir=$(model_dir "$1" "$2")
	[ "$1" = blanco ] && return 0
	[ -f "$dir/weights.pt" ] && [ -f "$dir/training_options.txt" ] &&
		[ "$(cat "$dir/training_options.txt")" = "$(options_of "$1" "$2")" ]
}

keep() { # MODEL SEED RUN_MODEL_DIR [EXTRA_FILE...]: a finished run's model into its folder
	local model=$1 seed=$2 src=$3 dir
	dir=$(model_dir "$1" "$2")
	shift 3
	mkdir -p "$dir"
	cp "$src/"{config.json,weights.pt,metrics.json} "$@" "$dir/"
	options_of "$model" "$seed" >"$dir/training_options.txt"
}

finetune() { # MODEL SEED
	local model=$1 seed=$2 out="$REST/$1/seed-$2"
	if trained "$model" "$seed"; then
		echo "== $model seed $seed: trained ($(model_dir "$model" "$seed"))"
		return 0
	fi
	echo "== $model seed $seed"
	# shellcheck disable=SC2086
	$PY -m training finetune --init models/ulw_sleepnet --data "$DATA" --cache "$CACHE" \
		--threads "$THREADS" --out "$out" $SLIM_OPTS ${OPTS[$model]} --seed "$seed"
	# what slimming did: the gammas before and after sparsity training, the threshold
	keep "$model" "$seed" "$out/model" "$out/pruned-before-retraining/"{pruning.json,gammas.png}
}

train_baseline() { # SEED: the shipped model's training with another seed
	local model=baseline seed=$1 out="$REST/baseline/seed-$1"
	if trained baseline "$seed"; then
		echo "== baseline seed $seed: trained ($(model_dir baseline "$seed"))"
		return 0
	fi
	echo "== baseline seed $seed"
	# shellcheck disable=SC2086
	$PY -m training train --data "$DATA" --cache "$CACHE" --out "$out" $BASELINE_OPTS --seed "$seed"
	keep baseline "$seed" "$out/split/model"
}

train() {
	# first seed of every model, then the extra seeds one seed at a time (baseline, REST(A),
	# REST(A+S)): a study stopped part-way has the same number of seeds of each
	for v in $COMPRESSED; do
		finetune "$v" "$first_seed"
	done
	for s in $REST_SEEDS; do
		[ "$s" = "$first_seed" ] && continue # the shipped model is the first seed
		train_baseline "$s"
		for v in $COMPRESSED; do
			[[ " $(seeds_of "$v") " == *" $s "* ]] && finetune "$v" "$s"
		done
	done
}

convert() { # MODEL SEED: the int8 model next to the weights (seed 0: shipped in models/)
	local dir out
	dir=$(model_dir "$1" "$2")
	out="$REST/convert/$1-seed$2"
	if ! trained "$1" "$2"; then
		echo "rest_study: $1 seed $2 has not finished training ($(model_dir "$1" "$2")): skipped"
		return 1
	fi
	if [ ! -f "$out/report.json" ]; then
		$PY -m converter build --model "$dir" --out "$out"
	fi
	if [ "$1" != baseline ] && [ "$2" = "$first_seed" ]; then # shipped beside the weights
		cp "$out/"{model_int8.tflite,model.onnx,engine_layers.json} "$dir/"
	fi
}

cards() {
	mkdir -p "$REST/bench"
	for v in baseline $COMPRESSED; do
		for s in $(seeds_of $v); do
			echo "== convert $v seed $s"
			convert "$v" "$s" || true
		done
		[ -f "$REST/convert/$v-seed$first_seed/report.json" ] || continue
		local conv="$REST/convert/$v-seed$first_seed" fw="$REST/firmware/$v"
		make -s -C firmware BOARD=emu-m4 MODEL_DIR="$(realpath "$conv")" BUILD="$(realpath -m "$fw")"
		"$HOST_TOOLS" bench --firmware "$fw/firmware.elf" --epochs 3 --json >"$REST/bench/$v.json"
		[ "$v" = baseline ] && continue # the shipped model's card is written by hand
		$PY -m training model-card --model "models/ulw_sleepnet_$v" --title "${TITLE[$v]}" \
			--convert-report "$conv/report.json" --bench "$REST/bench/$v.json"
	done
}

evaluate_one() { # NAME MODEL SEED [robustness options]
	local name=$1 model=$2 seed=$3 out="$REST/robustness/$1/seed-$3"
	shift 3
	[ -f "$out/results.json" ] && return 0
	local dir int8
	dir=$(model_dir "$model" "$seed")
	int8=$REST/convert/$model-seed$seed/model_int8.tflite
	[ "$seed" = "$first_seed" ] && int8=$dir/model_int8.tflite # shipped
	[ "$model" = blanco ] && int8=$(model_dir liu "$seed")/model_int8.tflite # Liu behind a filter
	if ! trained "$model" "$seed"; then
		echo "rest_study: $name seed $seed has not finished training: skipped"
		return 0
	fi
	if [ ! -f "$int8" ]; then
		echo "rest_study: $name seed $seed has no int8 model yet ($int8; run the cards step): skipped"
		return 0
	fi
	echo "== robustness $name seed $seed"
	# shellcheck disable=SC2086
	$PY -m training robustness --model "$dir" --data "$DATA" \
		--cache "$CACHE" --threads "$THREADS" --tflite "$int8" --out "$out.part" $ROBUSTNESS_OPTS "$@"
	rm -rf "$out" && mv "$out.part" "$out"
}

evaluate() {
	for v in baseline $COMPRESSED; do
		for s in $(seeds_of $v); do
			evaluate_one "$v" "$v" "$s"
		done
	done
	# Blanco: the Liu model behind its test-time band-pass (models/ulw_sleepnet_blanco)
	evaluate_one blanco blanco "$first_seed"
}

table() {
	local runs=() v dirs
	for v in baseline liu blanco ford rest_a rest_as; do
		[ -d "$REST/robustness/$v" ] || continue
		dirs=$(find "$REST/robustness/$v" -maxdepth 2 -name results.json -printf '%h\n' 2>/dev/null |
			sort | paste -sd, -)
		[ -n "$dirs" ] && runs+=(--run "$v=$dirs")
	done
	[ ${#runs[@]} -gt 0 ] || { echo "rest_study: no robustness results in $REST/robustness" >&2; exit 2; }
	$PY -m training robustness-table --out "$REST/robustness/all" "${runs[@]}"
	# the models side by side: channels removed, MACs, flash, RAM, instructions, clean scores
	local models=()
	for v in baseline $COMPRESSED; do
		[ -f "$(model_dir "$v" "$first_seed")/weights.pt" ] || continue
		models+=(--model "$v=$(model_dir "$v" "$first_seed"),$REST/convert/$v-seed$first_seed/report.json,$REST/bench/$v.json")
	done
	$PY -m training study-models --out "$REST/models.md" "${models[@]}"
}

case ${1:-} in
train) train ;;
cards) cards ;;
evaluate) evaluate ;;
table) table ;;
all) train && cards && evaluate && table ;;
*)
	echo "usage: scripts/rest_study.sh train|cards|evaluate|table|all" >&2
	exit 2
	;;
esac
