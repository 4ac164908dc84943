"""The host-compiled engine: mismatch reports, and a clear error without the source checkout."""

from __future__ import annotations

import numpy as np
import pytest

from converter import native
from converter.native import first_mismatches


def test_mismatches_are_reported_with_index_actual_expected():
    a = np.array([[1, 2], [3, 4], [5, 6]], np.int8)
    b = a.copy()
    b[1, 0] = 9
    assert first_mismatches(a, b) == ["index 1: actual [3, 4] expected [9, 4]"]


def test_missing_firmware_sources_say_a_checkout_is_needed(tmp_path, monkeypatch):
    assert native.engine_kernel_sources()  # present in this checkout
    monkeypatch.setattr(native, "ENGINE", tmp_path / "firmware" / "engine")
    with pytest.raises(FileNotFoundError, match="needs a source checkout") as err:
        native.NativeEngine(tmp_path, tmp_path / "build")
    assert str(tmp_path / "firmware" / "engine" / "kernels") in str(err.value)
    assert not (tmp_path / "build").exists()  # nothing is built before the check
