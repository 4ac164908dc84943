"""The kernels' shared library (tests/firmware/kernel_lib.py), built once per session."""

from __future__ import annotations

import ctypes

import pytest

from .kernel_lib import build_library


@pytest.fixture(scope="session")
def lib(tmp_path_factory) -> ctypes.CDLL:
    return build_library(tmp_path_factory.mktemp("kernels"))
