"""Model folders as the host tools read them (host_tools.reference): the engine's layer names
from engine_layers.json, the default folder only in a source checkout, and the references."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from host_tools import reference
from host_tools.cli import main
from host_tools.reference import ENGINE_LAYERS, ModelError, ModelFiles, References
from host_tools.reference_process import ReferenceProcess, ReferenceProcessError
from sleepdata.normalise import Normaliser

from ..conftest import REPO


@pytest.fixture
def folder(tmp_path):
    """A copy of the shipped model folder."""
    return shutil.copytree(REPO / "models" / "ulw_sleepnet", tmp_path / "model")


def test_layer_names_come_from_the_converters_list(folder):
    layers = json.loads((folder / ENGINE_LAYERS).read_text())["layers"]
    model = ModelFiles.load(folder)
    assert model.layers == tuple(layer["name"] for layer in layers) and len(layers) == 12
    assert model.layer_names(12)[0] == layers[0]["name"]
    assert model.layer_names(13)[12] == "layer 12"  # one the list does not name


def test_without_the_list_layers_are_numbered(folder):
    (folder / ENGINE_LAYERS).unlink()
    model = ModelFiles.load(folder)
    assert model.layers is None and model.layer_names(3) == ["layer 0", "layer 1", "layer 2"]


def test_a_list_written_for_another_model_is_refused(folder):
    data = json.loads((folder / ENGINE_LAYERS).read_text())
    (folder / ENGINE_LAYERS).write_text(json.dumps({**data, "model_sha256": "ab" * 32}))
    want = hashlib.sha256((folder / "model_int8.tflite").read_bytes()).hexdigest()
    with pytest.raises(ModelError) as err:
        ModelFiles.load(folder)
    msg = str(err.value)
    assert str(folder / ENGINE_LAYERS) in msg and "abababababababab..." in msg
    assert want[:16] in msg and "python -m converter build --model" in msg
    (folder / ENGINE_LAYERS).write_text('{"layers": 3}')
    with pytest.raises(ModelError, match="not an engine layer list"):
        ModelFiles.load(folder)


def test_the_default_model_folder_needs_a_source_checkout(tmp_path, monkeypatch, capsys):
    assert ModelFiles.load().folder == REPO / "models" / "ulw_sleepnet"
    monkeypatch.setattr(reference, "CHECKOUT_MODEL_DIR", tmp_path / "models" / "ulw_sleepnet")
    with pytest.raises(ModelError, match="no default model folder outside a source checkout"):
        ModelFiles.load()
    night = tmp_path / "SC4001E0-PSG.edf"
    night.write_bytes(b"")
    (tmp_path / "SC4001EC-Hypnogram.edf").write_bytes(b"")
    assert main(["stream", str(night), "--port", "loop://"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no default model folder") and "pass --model DIR" in err
    assert ModelFiles.load(REPO / "models" / "ulw_sleepnet").layers  # an explicit folder


def test_references_are_tflite_micro_and_the_float_model(folder):
    from sleepdata.tflm import TflmRunner

    model = ModelFiles.load(folder)
    refs = References(model)
    runner = TflmRunner(model.tflite)
    assert (refs.output_scale, refs.output_zero_point) == (
        runner.output_scale,
        runner.output_zero_point,
    )
    norm = Normaliser.from_dict(model.config["normalisation"])
    rng = np.random.default_rng(0)
    x = norm.to_int8(norm.to_wire(rng.normal(0, 20, (2, 4, 3000)).astype(np.float32)))
    assert np.array_equal(refs.tflm(x[0]), runner.run_one(x[0]))
    logits = refs.float_logits(x)
    assert logits.shape == (2, 5) and np.isfinite(logits).all()


def test_the_reference_process_gives_the_same_references_in_order(folder):
    """A stream's references run on a process of their own (off the sender's GIL): they must
    be the in-process References', epoch by epoch, and a failure there must reach the caller."""
    from sleepdata.tflm import softmax

    model = ModelFiles.load(folder)
    refs = References(model)
    norm = Normaliser.from_dict(model.config["normalisation"])
    rng = np.random.default_rng(1)
    x = norm.to_int8(norm.to_wire(rng.normal(0, 20, (7, 4, 3000)).astype(np.float32)))
    proc = ReferenceProcess(model, batch=3, ahead=1).start()
    try:
        assert (proc.output_scale, proc.output_zero_point) == (
            refs.output_scale,
            refs.output_zero_point,
        )
        proc.compute(x)
        probs = softmax(refs.float_logits(x))
        for k in (0, 1, 2, 6, 3):  # any order of asking; each waits for its epoch
            got = proc.get(k, timeout_s=60)
            assert np.array_equal(got.tflm_scores, refs.tflm(x[k]))
            np.testing.assert_allclose(got.float_probs, probs[k], rtol=1e-5)
        assert proc.cpu_s > 0
        proc.compute(np.zeros((2, 4, 5), np.int8))  # not an epoch: the process says why
        with pytest.raises(ReferenceProcessError, match="reference computation failed"):
            proc.get(0, timeout_s=60)
    finally:
        proc.stop()
    proc.stop()  # (twice is harmless)


def test_a_model_behind_a_test_time_filter_is_refused_with_what_to_do():
    """models/ulw_sleepnet_blanco is the Liu model plus a band-pass the host does not apply:
    streaming it as if it were a model would score unfiltered input under its name."""
    blanco = Path(__file__).resolve().parents[2] / "models" / "ulw_sleepnet_blanco"
    with pytest.raises(ModelError, match=r"test-time filter.*Blanco.*training robustness"):
        ModelFiles.load(blanco)
