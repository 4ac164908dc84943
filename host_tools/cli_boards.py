"""How the commands reach a board: --port URL (a real board, or any pyserial URL) or an emulated
--board started for the run, and how reports name it."""

from __future__ import annotations

from pathlib import Path


def open_device(args, model_dir=None):
    """(device, closer) for --port URL (any pyserial URL: a device path, socket://,
    rfc2217://) or an emulated --board running firmware for ``model_dir`` (default: --model,
    else the shipped model)."""
    import serial

    from .device import Device, DeviceError
    from .emulator import Emulator
    from .faults import FaultyLink
    from .transport import open_port

    spec = getattr(args, "faults", None)
    wire = getattr(args, "wire", "auto")
    counts = None

    def faulty(port):
        """The port, behind the fault injector when --faults is given (one set of counts for
        the link and the links that replace it after a cut)."""
        nonlocal counts
        if spec is None:
            return port
        link = FaultyLink(port, spec, counts=counts)
        counts = link.counts
        return link

    if args.port:

        def reopen():
            try:
                return faulty(open_port(args.port, args.baud))
            except (serial.SerialException, ValueError) as exc:
                raise DeviceError(
                    f"opening {args.port}: {exc}; check the port name or URL, that the board "
                    "is connected and that no other program holds the port"
                ) from None

        port = reopen()
        dev = Device(port, reopen=reopen, faults=counts, wire=wire)
        return dev, lambda: dev.port.close()
    model_dir = model_dir if model_dir is not None else getattr(args, "model", None)
    emu = Emulator(args.board, elf=firmware_arg(args), model_dir=model_dir).start()
    try:
        port = faulty(emu.connect())
    except BaseException:
        emu.stop()
        raise
    dev = Device(
        port, timeout_s=120, reopen=lambda: faulty(emu.connect()), faults=counts, wire=wire
    )

    def close():
        try:
            dev.port.close()
        finally:
            emu.stop()

    return dev, close


def firmware_arg(args) -> Path | None:
    from .emulator import EmulatorError

    firmware = getattr(args, "firmware", None)
    if firmware and not Path(firmware).is_file():
        raise EmulatorError(f"--firmware {firmware}: no such file")
    return Path(firmware) if firmware else None


def port_label(args) -> str:
    return args.port if args.port else f"emulated {args.board}"
