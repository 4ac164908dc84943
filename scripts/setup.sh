#!/usr/bin/env bash
# One-command set-up for a fresh Debian/Ubuntu machine; idempotent and offline on a second run.
#   1. Debian packages (cross compiler, newlib, QEMU) when missing.
#   2. .venv with torch==2.13.0 first, then every pinned Python dependency (requirements/lock.txt),
#      then the project itself in editable mode.
# A stamp holding the hash of the inputs makes a second run a no-op.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}

log() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

# --- 1. Debian packages --------------------------------------------------------------------
DEB_PACKAGES=(gcc gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm clang-14 libclang-rt-14-dev libfuzzer-14-dev clang-format-14)
missing=()
command -v arm-none-eabi-gcc >/dev/null 2>&1 || missing+=(gcc-arm-none-eabi)
# newlib is a library: probe for its header rather than a command.
if command -v arm-none-eabi-gcc >/dev/null 2>&1; then
    echo '#include <stdlib.h>' | arm-none-eabi-gcc -E -x c - >/dev/null 2>&1 || missing+=(libnewlib-arm-none-eabi)
else
    missing+=(libnewlib-arm-none-eabi)
fi
command -v qemu-system-arm >/dev/null 2>&1 || missing+=(qemu-system-arm)
# the cycle estimate's QEMU plugin (host_tools/cycles) is built with the host's C compiler
command -v cc >/dev/null 2>&1 || command -v gcc >/dev/null 2>&1 || missing+=(gcc)
# make lint: clang-format for the firmware's hand-written C
command -v clang-format-14 >/dev/null 2>&1 || missing+=(clang-format-14)
# the firmware fuzzer (make -C firmware fuzz): clang with libFuzzer and the sanitizer runtimes
command -v clang-14 >/dev/null 2>&1 || missing+=(clang-14)
if command -v clang-14 >/dev/null 2>&1; then
    echo 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return 0; }' |
        clang-14 -fsanitize=fuzzer,address,undefined -x c - -o /dev/null >/dev/null 2>&1 ||
        missing+=(libclang-rt-14-dev libfuzzer-14-dev)
else
    missing+=(libclang-rt-14-dev libfuzzer-14-dev)
fi

if ((${#missing[@]})); then
    log "installing Debian packages: ${missing[*]}"
    if [ "$(id -u)" = 0 ]; then
        SUDO=()
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO=(sudo)
    else
        die "missing Debian packages ${missing[*]} and no root or password-less sudo to install them.
       Install them yourself:  sudo apt-get install --no-install-recommends ${DEB_PACKAGES[*]}
       then run 'make setup' again."
    fi
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found: install ${DEB_PACKAGES[*]} with your package manager"
    # Fresh containers ship without package lists.
    if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*_Packages*' -print -quit 2>/dev/null)" ]; then
        "${SUDO[@]}" apt-get update -q
    fi
    DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" \
        || die "apt-get install ${missing[*]} failed (see above); check network access to the Debian mirror"
fi

# --- 2. Python environment -----------------------------------------------------------------
stamp="$VENV/.setup-stamp"
want=$(cat pyproject.toml requirements/lock.txt scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$VENV/bin/python" ]; then
    log "Python environment up to date ($VENV)"
    exit 0
fi

"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
    || die "$PYTHON is older than 3.10; set PYTHON=/path/to/python3.11"
[ -x "$VENV/bin/python" ] || { log "creating $VENV"; "$PYTHON" -m venv "$VENV"; }
pip=("$VENV/bin/python" -m pip install -q --disable-pip-version-check)

# torch first and alone: an unpinned or later resolution pulls the CUDA build (gigabytes).
# TORCH_INDEX_URL (e.g. https://download.pytorch.org/whl/cpu) selects the CPU wheel on machines
# without a local copy.
torch_pin=$(grep -E '^torch==' requirements/lock.txt)
if ! "$VENV/bin/python" -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '${torch_pin#torch==}')" 2>/dev/null; then
    log "installing $torch_pin"
    if [ -n "${TORCH_INDEX_URL:-}" ]; then
        "${pip[@]}" --extra-index-url "$TORCH_INDEX_URL" "$torch_pin"
    else
        "${pip[@]}" "$torch_pin"
    fi
fi

log "installing pinned dependencies (requirements/lock.txt)"
"${pip[@]}" -r requirements/lock.txt
# The project itself: no build isolation, so no network is needed for it.
"${pip[@]}" --no-build-isolation --no-deps -e .
echo "$want" > "$stamp"
log "done: activate with 'source $VENV/bin/activate'"
