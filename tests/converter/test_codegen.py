"""C generation from the plan, and engine_layers.json: the engine's layer names and MACs from
the same list as the generated C's tables, and the committed copies up to date."""

from __future__ import annotations

import hashlib
import json
import re

import pytest

from converter import codegen
from converter.graph import read_tflite
from converter.plan import make_plan
from training.model import load_model, summary

from ..conftest import REPO
from .conftest import SHIPPED

MODELS = sorted(p.parent for p in (REPO / "models").glob("*/engine_layers.json"))


@pytest.fixture(scope="module")
def generated(shipped_plan, tmp_path_factory):
    """The sources of the shipped plan (placeholder tool versions and TFLM arena)."""
    _graph, plan = shipped_plan
    out = tmp_path_factory.mktemp("codegen")
    norm = json.loads((SHIPPED.parent / "config.json").read_text())["normalisation"]["channels"]
    written = codegen.write_sources(out, plan, SHIPPED.read_bytes(), {"tool": "0"}, 1000, norm)
    return out, plan, written


def test_engine_layers_json_is_the_plan(generated):
    out, plan, written = generated
    path = out / "engine_layers.json"
    assert path in written
    text = path.read_text()
    doc = json.loads(text)
    assert doc["generator"] == "python -m converter build"
    assert doc["model_sha256"] == hashlib.sha256(SHIPPED.read_bytes()).hexdigest()
    assert doc["layers"] == [{"name": f"{s.label}:{s.layer}", "macs": s.macs} for s in plan.steps]
    assert text == json.dumps(doc, indent=1) + "\n"  # the documented format, to the byte


def test_c_layer_tables_list_the_same_layers(generated):
    out, _plan, _written = generated
    layers = json.loads((out / "engine_layers.json").read_text())["layers"]
    c = (out / "engine_model.c").read_text()
    names = re.search(r"engine_model_layer_names\[ENGINE_MODEL_LAYERS\] = \{(.*?)\};", c, re.S)
    macs = re.search(r"engine_model_layer_macs\[ENGINE_MODEL_LAYERS\] = \{(.*?)\};", c, re.S)
    assert re.findall(r'"([^"]+)"', names.group(1)) == [x["name"] for x in layers]
    assert [int(v) for v in macs.group(1).split(",")] == [x["macs"] for x in layers]
    header = (out / "engine_model.h").read_text()
    assert f"#define ENGINE_MODEL_LAYERS {len(layers)}\n" in header


def test_generated_engine_equals_the_committed_one(generated):
    """The plan and templates still write the firmware's engine_model.c byte for byte (but the
    banner, which names the tool versions of the real build)."""
    out, _plan, _written = generated
    for name in ("engine_model.c", "engine_model.h"):
        committed = (REPO / "firmware" / "engine" / "model" / name).read_text()
        new = (out / name).read_text()
        assert new.split("*/", 1)[1] == committed.split("*/", 1)[1], name


@pytest.mark.parametrize("model", MODELS, ids=lambda p: p.name)
def test_committed_engine_layers_match_their_model(model):
    """models/*/engine_layers.json is what the converter writes for that folder's .tflite, with
    the trained network's MACs when the graph computes fewer (composed shortcut streams)."""
    flat = (model / "model_int8.tflite").read_bytes()
    layers = codegen.engine_layers(make_plan(read_tflite(flat)))
    trained = summary(load_model(model)[0])["macs"]
    fewer = trained if trained != sum(x["macs"] for x in layers) else None
    want = codegen.layers_json(layers, hashlib.sha256(flat).hexdigest(), fewer)
    assert (model / "engine_layers.json").read_text() == want


def test_every_shipped_model_has_its_engine_layers():
    folders = sorted(p.parent for p in (REPO / "models").glob("*/model_int8.tflite"))
    assert MODELS == folders
