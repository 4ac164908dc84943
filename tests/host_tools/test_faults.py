"""The fault-injecting link: its spec, its rates and its determinism (no board needed)."""

from __future__ import annotations

import pytest

from host_tools.faults import FaultSpec, FaultyLink


class Loopback:
    """A port whose writes come back as reads."""

    def __init__(self):
        self.data = b""

    def write(self, data):
        self.data += bytes(data)

    def read_available(self, wait_s):
        data, self.data = self.data, b""
        return data

    def close(self):
        pass


def test_spec_parses_and_rejects_with_a_reason():
    spec = FaultSpec.parse("corrupt=0.01,drop=0.005,seed=3,direction=to_board,cut_after=10")
    assert (spec.corrupt, spec.drop, spec.seed, spec.direction, spec.cut_after) == (
        0.01,
        0.005,
        3,
        "to_board",
        10,
    )
    for bad, why in [
        ("corrupt", "key=value"),
        ("smash=0.1", "key=value"),
        ("drop=x", "bad value for drop"),
        ("drop=1.5", "probability"),
        ("direction=up", "bad value for direction"),
    ]:
        with pytest.raises(ValueError, match=why):
            FaultSpec.parse(bad)


def test_rates_are_the_configured_ones():
    n = 200_000
    link = FaultyLink(Loopback(), FaultSpec(corrupt=0.01, drop=0.005, direction="to_board"))
    payload = bytes(range(256)) * (n // 256)
    link.write(payload)
    got = link.read_available(0)
    c = link.counts
    assert c.corrupt == pytest.approx(0.01 * len(payload), rel=0.1)
    assert c.drop == pytest.approx(0.005 * len(payload), rel=0.15)
    assert len(got) == len(payload) - c.drop


def test_the_same_seed_gives_the_same_faults():
    def run(seed):
        link = FaultyLink(Loopback(), FaultSpec(corrupt=0.05, duplicate=0.02, seed=seed))
        link.write(bytes(5000))
        return link.read_available(0)

    assert run(1) == run(1) != run(2)


def test_a_cut_link_raises_until_replaced():
    from serial import SerialException

    link = FaultyLink(Loopback(), FaultSpec(cut_after=100))
    link.write(bytes(100))
    with pytest.raises(SerialException, match="cut"):
        link.write(b"x")
    with pytest.raises(SerialException):
        link.read_available(0)
    assert link.counts.cuts == 1
