#!/usr/bin/env bash
# The host-tools-only install, measured (make bench-host): a fresh venv with only
# `pip install '.[host]'` (a wheel built from this checkout, versions from requirements/lock.txt),
# its size (target <= 300 MB), what `host_tools stream --help` imports (no torch, no TensorFlow),
# and a simulated night streamed through the emulated board from OUTSIDE the checkout, so that
# nothing is found from the source tree: model folder and firmware are passed explicitly.
#   EPOCHS=N  epochs to stream (default 20);  HOST_VENV=DIR  where the venv goes.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
PYTHON=${PYTHON:-python3}
VENV=${HOST_VENV:-$here/build/host-venv}
WORK=$here/build/bench-host
EPOCHS=${EPOCHS:-20}
SEED=${SEED:-0}

log() { printf 'bench-host: %s\n' "$*" >&2; }

rm -rf "$VENV" "$WORK"
mkdir -p "$WORK"
log "fresh venv $VENV, pip install '.[host]' (constrained by requirements/lock.txt)"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -c requirements/lock.txt ".[host]"
# The wheel's copy is what runs: leave the checkout so it cannot shadow the installed packages.
cd "$WORK"
venv_mb=$(du -sm "$VENV" | cut -f1)
site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
site_mb=$(du -sm "$site" | cut -f1)

"$VENV/bin/python" -X importtime -m host_tools stream --help >/dev/null 2>imports.txt
stack=$(awk -F'|' '/^import time:/ {gsub(/ /, "", $3); split($3, m, "."); print m[1]}' imports.txt |
    grep -xE 'torch|tensorflow|keras|onnx|training|converter' | sort -u | tr '\n' ' ' || true)
installed=$("$VENV/bin/python" -c '
import importlib.util as u
print(" ".join(m for m in ("torch", "tensorflow", "onnx", "platformio") if u.find_spec(m)))')

# The night comes from the full environment (the simulator needs scipy, which .[host] lacks).
log "simulating a night (generated hypnogram, seed $SEED) with $here/.venv"
psg=$("$here/.venv/bin/python" -c "
from sleepdata.simulator import simulate_generated
((psg, hyp),) = simulate_generated('night', 1, seed=$SEED)
print(psg.resolve())")
make -s -C "$here/firmware" BOARD=emu-m4 >/dev/null
log "streaming $EPOCHS epochs through emu-m4 with the installed host_tools"
t0=$(date +%s.%N)
"$VENV/bin/host_tools" stream "$psg" --epochs "$EPOCHS" --out run \
    --model "$here/models/ulw_sleepnet" --firmware "$here/firmware/build/emu-m4/firmware.elf" \
    > stream.txt
t1=$(date +%s.%N)
cat stream.txt >&2

"$VENV/bin/python" - "$venv_mb" "$site_mb" "$stack" "$installed" "$t0" "$t1" "$EPOCHS" <<'EOF'
import json, sys
venv_mb, site_mb, stack, installed, t0, t1, epochs = sys.argv[1:]
report = json.load(open("run/report.json"))
result = {
    "venv_mb": int(venv_mb),
    "site_packages_mb": int(site_mb),
    "target_venv_mb": 300,
    "training_stack_installed": installed.split(),
    "training_stack_imported_by_stream_help": stack.split(),
    "epochs_streamed": report["epochs"],
    "bitexact_vs_tflm": report["bitexact_vs_tflm"],
    "stream_wall_s": round(float(t1) - float(t0), 1),
    "report": "build/bench-host/run/report.json",
}
print(json.dumps(result, indent=1))
ok = (
    int(venv_mb) <= 300
    and not stack.split()
    and not installed.split()
    and report["epochs"] == int(epochs)
    and report["bitexact_vs_tflm"] == 1.0
)
print("all targets met" if ok else "TARGET MISSED")
sys.exit(0 if ok else 1)
EOF
