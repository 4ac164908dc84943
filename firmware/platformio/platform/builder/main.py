"""SCons builder of the in-repo PlatformIO platform: the system arm-none-eabi tools, the
board's linker script, and `pio run -t upload` booting emulated boards in QEMU."""

from SCons.Script import AlwaysBuild, Default, DefaultEnvironment

env = DefaultEnvironment()
board = env.BoardConfig()
cpu = board.get("build.cpu", "cortex-m4")

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
)
machine = ["-mcpu=%s" % cpu, "-mthumb", "-mfloat-abi=soft"]
env.Append(
    CCFLAGS=machine + ["-ffunction-sections", "-fdata-sections", "-g"],
    LINKFLAGS=machine + ["-nostartfiles", "-Wl,--gc-sections", "--specs=nano.specs",
                         "--specs=nosys.specs"],
)
# The board's build.ldscript is passed to the linker by PlatformIO itself.
elf = env.BuildProgram()
size = env.Alias("size", elf, env.VerboseAction("$SIZETOOL $SOURCES", "Program size"))
AlwaysBuild(size)

machine_name = board.get("debug.qemu_machine", "")
icount_shift = board.get("debug.qemu_icount_shift", "6")
if machine_name:
    port = env.subst("$UPLOAD_PORT") or "5555"  # pio run -t upload --upload-port N
    env.Replace(UPLOADCMD=(
        "echo 'serial URL: socket://127.0.0.1:%s' && qemu-system-arm -M %s -display none "
        "-monitor none -icount shift=%s,align=off,sleep=off -kernel $SOURCE "
        "-serial tcp:127.0.0.1:%s,server=on,wait=on,nodelay=on"
        % (port, machine_name, icount_shift, port)))
    AlwaysBuild(env.Alias("upload", elf, env.VerboseAction("$UPLOADCMD", "Booting in QEMU")))

Default([elf, size])
