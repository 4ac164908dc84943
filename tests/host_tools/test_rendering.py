"""What people read (host_tools.rendering): the board's self-description in the reports'
formats (``host_tools info``), and undefined scores printed as "n/a"."""

from __future__ import annotations

from host_tools import cli
from host_tools.protocol import CounterKind
from host_tools.reference import ModelFiles
from host_tools.rendering import info_text, onchip_text

from .fakes import board_info


class _InfoBoard:
    def __init__(self, info):
        self.info = info

    def hello(self):
        return self.info


def test_info_prints_the_hash_in_hex_the_counter_by_name_and_the_stack_peak_since_reset(
    monkeypatch, capsys
):
    model = ModelFiles.load()
    info = board_info(
        model,
        build_hash=0x1A2B3C4D,
        counter_kind=CounterKind.CYCLES,
        stack_peak_bytes=368,
        static_ram_bytes=71_234,
    )
    closed = []
    monkeypatch.setattr(
        cli, "open_device", lambda args: (_InfoBoard(info), lambda: closed.append(1))
    )
    assert cli.main(["info", "--port", "loop://"]) == 0 and closed == [1]
    lines = dict(line.split(None, 1) for line in capsys.readouterr().out.splitlines())
    assert lines["build_hash"] == "0x1a2b3c4d"  # as report.md's "build 0x1a2b3c4d"
    assert lines["counter_kind"] == "cycles"
    assert lines["stack_peak_bytes"] == "368 since reset"
    assert lines["model_hash"] == model.model_hash.hex()
    assert lines["board"] == "fake" and lines["static_ram_bytes"] == "71,234"
    instructions = info_text(board_info(model, counter_kind=CounterKind.INSTRUCTIONS))
    assert "counter_kind      instructions" in instructions.splitlines()


def _condition(f1_onchip, f1_tflm, host):
    f1 = {"macro_f1": f1_onchip}
    return {
        "kind": "none",
        "level": "-",
        "value": 0.0,
        "n_epochs": 2,
        "n_epochs_host": 10,
        "onchip": f1,
        "tflm_int8": {"macro_f1": f1_tflm},
        "host": {"int8_macro_f1": host},
        "bitexact": 1.0,
        "count_per_epoch_median": 66e6,
    }


def test_onchip_summary_prints_undefined_macro_f1_as_n_a():
    result = {
        "counter_kind": "instructions",
        "conditions": [_condition(None, None, None), _condition(0.5, 0.5, 0.625)],
        "all_bitexact": True,
        "truncated": False,
    }
    lines = onchip_text(result).splitlines()
    assert lines[1].split()[2:6] == ["n/a", "n/a", "-", "1.0000"]
    assert lines[2].split()[2:6] == ["0.500", "0.500", "0.625", "1.0000"]
