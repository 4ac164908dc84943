"""The host's references for the board's results, computed from the same int8 model inputs.

- **TFLite Micro** (the ``tflite-micro`` runtime) runs ``model_int8.tflite``: the board's int8
  scores must equal its outputs bit for bit (tolerance 0).
- **ONNX** (onnxruntime) runs the float model ``model.onnx`` on ``q / 16``, the float value of the
  same int8 input (docs/preprocessing.md): agreement with it is the int8 model's fidelity, not a
  check of the board.

`ModelFiles` reads a model folder (the shipped one by default, in a source checkout only);
`References` computes both in this process; ``host_tools.reference_process`` runs them on a
process of its own beside a stream. Nothing here prints.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sleepdata.normalise import INPUT_SCALE
from sleepdata.tflm import TflmRunner

#: models/ulw_sleepnet of a source checkout: the default model folder, only there (an installed
#: package ships no model; pass --model)
CHECKOUT_MODEL_DIR = Path(__file__).resolve().parents[1] / "models" / "ulw_sleepnet"
TFLITE = "model_int8.tflite"
ONNX = "model.onnx"
#: the converter's list of the engine's layers (optional: without it layers are numbered)
ENGINE_LAYERS = "engine_layers.json"
#: ONNX batch: large enough to amortise the call, small enough that the first results are early.
ONNX_BATCH = 32
#: Epochs a stream's references run ahead of the board: enough to be ready, few enough that
#: their ~10 ms per epoch is spread over the stream instead of crowding its first seconds.
AHEAD = 4


class ModelError(RuntimeError):
    """A model folder without the files the host tools need; says what writes them."""


#: how a model folder for the host tools is made (a `training train` model folder has only
#: config.json, weights.pt and metrics.json)
_CONVERT_HINT = (
    "python -m converter build --model MODEL --out DIR makes DIR a converted model folder from "
    "a trained one (MODEL holds config.json and weights.pt, e.g. RUN/split/model of python -m "
    "training train)"
)


def default_model_dir() -> Path:
    """The shipped model's folder in a source checkout; ModelError outside one."""
    if not CHECKOUT_MODEL_DIR.is_dir():
        raise ModelError(
            f"no default model folder outside a source checkout ({CHECKOUT_MODEL_DIR} does not "
            "exist): pass --model DIR"
        )
    return CHECKOUT_MODEL_DIR


@dataclass(frozen=True)
class ModelFiles:
    """A model folder as the host tools need it: config, int8 model, float model, hash, and the
    engine's layer names (from engine_layers.json, when the converter wrote it)."""

    folder: Path
    config: dict
    tflite: bytes
    #: first 8 bytes of the SHA-256 of model_int8.tflite (what the board reports in INFO)
    model_hash: bytes
    #: the engine's layers in execution order (engine_layers.json), None without that file
    layers: tuple[str, ...] | None = None
    #: the trained network's MACs per epoch (engine_layers.json), when the int8 graph computes
    #: fewer (a composed shortcut); None otherwise
    model_macs: int | None = None

    @classmethod
    def load(cls, folder: str | Path | None = None) -> ModelFiles:
        """The model folder ``folder`` (default: default_model_dir())."""
        folder = default_model_dir() if folder is None else Path(folder)
        if not folder.is_dir():
            raise ModelError(f"no such model folder {folder}; {_CONVERT_HINT}")
        if (folder / "test_time_filter.json").is_file():
            raise ModelError(
                f"{folder} is a model behind a test-time filter (test_time_filter.json: REST's "
                "Blanco model), which the host tools do not apply; stream the model folder it "
                "names, or evaluate it with python -m training robustness --model "
                f"{folder}"
            )
        for name in ("config.json", TFLITE, ONNX):
            if not (folder / name).is_file():
                hint = _CONVERT_HINT if name == "config.json" else convert_command(folder)
                raise ModelError(
                    f"{folder / name} does not exist, not a converted model folder; {hint}"
                )
        tflite = (folder / TFLITE).read_bytes()
        config = json.loads((folder / "config.json").read_text())
        digest = hashlib.sha256(tflite)
        layers, model_macs = _engine_layers(folder / ENGINE_LAYERS, digest.hexdigest())
        return cls(folder, config, tflite, digest.digest()[:8], layers, model_macs)

    def layer_names(self, n: int) -> list[str]:
        """Names of the board's ``n`` engine layers (LAYER_COUNTS order): engine_layers.json's,
        "layer <i>" for any it does not name."""
        names = self.layers or ()
        return [names[i] if i < len(names) else f"layer {i}" for i in range(n)]


def convert_command(folder: Path) -> str:
    """The command that (re)writes ``folder``'s converted files: in place when the folder holds
    the trained model (weights.pt), else from the trained model folder."""
    if (folder / "weights.pt").is_file():
        return f"python -m converter build --model {folder} --out {folder} writes them"
    return _CONVERT_HINT.replace("--out DIR makes DIR", f"--out {folder} makes {folder}")


def _engine_layers(path: Path, tflite_sha256: str) -> tuple[tuple[str, ...] | None, int | None]:
    """The layer names and the trained network's MACs (or None) of engine_layers.json
    ({"generator", "model_sha256", "layers": [{"name", "macs"}, ...], optional "model_macs"}),
    (None, None) when the file is absent; ModelError when it is unreadable or was written for
    another model_int8.tflite."""
    if not path.is_file():
        return None, None
    try:
        data = json.loads(path.read_text())
        names = tuple(str(layer["name"]) for layer in data["layers"])
        written_for = data["model_sha256"]
        model_macs = int(data["model_macs"]) if "model_macs" in data else None
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelError(
            f"{path}: not an engine layer list ({exc!r}); {convert_command(path.parent)}"
        ) from None
    if written_for != tflite_sha256:
        raise ModelError(
            f"{path} was written for a {TFLITE} with SHA-256 {str(written_for)[:16]}..., but "
            f"{path.parent / TFLITE} has {tflite_sha256[:16]}...: convert the model again so "
            f"that both come from the same run; {convert_command(path.parent)}"
        )
    return names, model_macs


class References:
    """TFLM and ONNX on int8 model inputs (4, 3000) / (n, 4, 3000)."""

    def __init__(self, model: ModelFiles):
        import onnxruntime as ort

        self._tflm = TflmRunner(model.tflite)
        #: int8 output quantisation: logit = (q - zero_point) * scale
        self.output_scale = self._tflm.output_scale
        self.output_zero_point = self._tflm.output_zero_point
        opts = ort.SessionOptions()
        # The machine is shared with the emulated board (QEMU): one thread each is enough.
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        self._onnx = ort.InferenceSession(
            str(model.folder / ONNX), opts, providers=["CPUExecutionProvider"]
        )

    def tflm(self, x_int8: np.ndarray) -> np.ndarray:
        """One epoch's int8 input (4, 3000) -> the int8 scores (5,) of TFLite Micro."""
        return self._tflm.run_one(x_int8)

    def float_logits(self, x_int8: np.ndarray) -> np.ndarray:
        """int8 inputs (n, 4, 3000) -> float logits (n, 5) of the ONNX float model."""
        x = np.asarray(x_int8, dtype=np.float32) * np.float32(INPUT_SCALE)
        return self._onnx.run(None, {"epoch": x})[0]


@dataclass
class EpochReference:
    tflm_scores: np.ndarray  # int8 (5,)
    float_probs: np.ndarray  # float64 (5,)
