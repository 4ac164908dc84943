"""Fixtures of the converter tests: the shipped model's plan (no conversion needed)."""

from __future__ import annotations

import pytest

from converter.graph import read_tflite
from converter.plan import make_plan

from ..conftest import REPO

SHIPPED = REPO / "models" / "ulw_sleepnet" / "model_int8.tflite"


@pytest.fixture(scope="session")
def shipped_plan():
    """(Graph, Plan) of the committed models/ulw_sleepnet/model_int8.tflite."""
    graph = read_tflite(SHIPPED.read_bytes())
    return graph, make_plan(graph)
