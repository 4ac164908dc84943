"""PlatformIO extra script (pre:, every environment of platformio.ini): the model the firmware
is built with. The committed firmware/engine/model by default; another converted model folder
(the OUT of `python -m converter build --model MODEL --out OUT`) with the environment variable
ULW_MODEL_DIR=OUT (`ULW_MODEL_DIR=OUT pio run -e emu_m4`) or the option `custom_model_dir = OUT`
in an [env:...] section of platformio.ini; the variable wins. Relative paths are relative to the
project folder. As an extra script rather than part of the in-repo platform's builder, it
works with the registry platform (nucleo_l476rg_registry) too."""

import os
import re

from SCons.Script import DefaultEnvironment

env = DefaultEnvironment()

MODEL_C = ("engine_model.c", "engine_model.h", "model_norm.h")
COMMITTED_MODEL = "firmware/engine/model"


def chosen_model_dir():
    """The model folder chosen by ULW_MODEL_DIR or custom_model_dir (absolute), None for the
    committed model; exits naming the missing files when the folder has no generated C."""
    chosen = os.environ.get("ULW_MODEL_DIR") or env.GetProjectOption("custom_model_dir", "")
    if not chosen:
        return None
    folder = os.path.abspath(os.path.join(env.subst("$PROJECT_DIR"), chosen))
    missing = [name for name in MODEL_C if not os.path.isfile(os.path.join(folder, name))]
    if missing:
        env.Exit(
            f"model folder {folder} (ULW_MODEL_DIR or custom_model_dir): {', '.join(missing)} "
            "missing; python -m converter build --model MODEL --out DIR writes them into DIR"
        )
    if re.search(r"\s", folder):
        env.Exit(f"model folder {folder!r}: a path without spaces is needed (compiler flags)")
    return folder


def use_model(folder):
    """Build the firmware with ``folder``'s generated C instead of the committed model's: its
    include path replaces -Ifirmware/engine/model of build_flags, the source filter drops
    engine/model/, and its engine_model.c is compiled into $BUILD_DIR/model."""
    include = re.compile(r"-I" + re.escape(COMMITTED_MODEL) + r"(?=\s|$)")
    flags = env.get("BUILD_FLAGS", [])
    if not any(include.search(str(f)) for f in flags):
        env.Exit(f"platformio.ini: build_flags have no -I{COMMITTED_MODEL} to replace")
    env.Replace(BUILD_FLAGS=[include.sub(f"-I{folder}", str(f)) for f in flags])
    src_filter = env.get("SRC_FILTER")
    items = src_filter if isinstance(src_filter, list) else [src_filter or ""]
    if not any("+<engine/model/>" in str(item) for item in items):
        env.Exit("platformio.ini: build_src_filter has no +<engine/model/> to replace")
    items = [str(item).replace("+<engine/model/>", "-<engine/model/>") for item in items]
    env.Replace(SRC_FILTER=items if isinstance(src_filter, list) else items[0])
    env.BuildSources("$BUILD_DIR/model", folder, ["+<engine_model.c>"])
    print(f"Model: {folder}")


model_dir = chosen_model_dir()
if model_dir is not None:
    use_model(model_dir)
