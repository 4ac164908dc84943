"""SCons builder of the in-repo PlatformIO platform: the system arm-none-eabi tools, the
board's linker script, and `pio run -t upload` booting emulated boards in QEMU. What QEMU runs
and the core clock come from the board table, firmware/boards/boards.ini. (The model is chosen
by the extra script firmware/platformio/select_model.py, for every platform.)"""

import configparser
import os

from SCons.Script import AlwaysBuild, Default, DefaultEnvironment

env = DefaultEnvironment()
board = env.BoardConfig()
cpu = board.get("build.cpu", "cortex-m4")


def board_table_section(pio_board):
    """The board table's section whose pio_board is this PlatformIO board id."""
    path = os.path.join(env.subst("$PROJECT_DIR"), "firmware", "boards", "boards.ini")
    table = configparser.ConfigParser()
    if not table.read(path):
        env.Exit(f"board table {path} not found (needed for board {pio_board})")
    for name in table.sections():
        if table[name].get("pio_board") == pio_board:
            return table[name]
    env.Exit(f"no section of {path} has pio_board = {pio_board}")
    return None


facts = board_table_section(env.subst("$BOARD"))

env.Replace(
    AR="arm-none-eabi-ar",
    AS="arm-none-eabi-gcc",
    CC="arm-none-eabi-gcc",
    CXX="arm-none-eabi-g++",
    LINK="arm-none-eabi-gcc",
    OBJCOPY="arm-none-eabi-objcopy",
    RANLIB="arm-none-eabi-ranlib",
    SIZETOOL="arm-none-eabi-size",
    PROGSUFFIX=".elf",
    BOARD_F_CPU=f"{facts['core_clock_hz']}L",  # printed by PlatformIO as the board's clock
)
machine = [f"-mcpu={cpu}", "-mthumb", "-mfloat-abi=soft"]
env.Append(
    CCFLAGS=[*machine, "-ffunction-sections", "-fdata-sections", "-g"],
    LINKFLAGS=[
        *machine,
        "-nostartfiles",
        "-Wl,--gc-sections",
        "--specs=nano.specs",
        "--specs=nosys.specs",
    ],
)
# The board's build.ldscript is passed to the linker by PlatformIO itself.
elf = env.BuildProgram()
size = env.Alias("size", elf, env.VerboseAction("$SIZETOOL $SOURCES", "Program size"))
AlwaysBuild(size)

if "qemu_machine" in facts:
    port = env.subst("$UPLOAD_PORT") or "5555"  # pio run -t upload --upload-port N
    env.Replace(
        # QEMU has no end of its own: the upload "runs" until it is stopped. Ctrl-C reaches
        # PlatformIO too, which prints "Aborted by user"; QEMU stopped alone (kill PID) makes
        # PlatformIO report the upload as FAILED. The hint says both, before QEMU starts.
        UPLOADCMD=(
            f"echo 'serial URL: socket://127.0.0.1:{port}' && echo 'the emulated board runs "
            "until you stop it with Ctrl-C; PlatformIO then prints Aborted by user (FAILED if "
            "QEMU alone is killed): expected, an emulated board never finishes an upload'"
            " && qemu-system-arm"
            f" -M {facts['qemu_machine']} -display none -monitor none"
            f" -icount shift={facts['icount_shift']},align=off,sleep=off -kernel $SOURCE"
            f" -serial tcp:127.0.0.1:{port},server=on,wait=on,nodelay=on"
        )
    )
    AlwaysBuild(env.Alias("upload", elf, env.VerboseAction("$UPLOADCMD", "Booting in QEMU")))

Default([elf, size])
