"""``python -m converter build``: every artefact from a model folder, each one checked.

OUT becomes a deployable model folder: the model folder's own files (config.json, weights.pt,
metrics.json and MODEL_CARD.md when present) copied beside model.onnx, model_int8.tflite,
model_data.c/.h, engine_model.c/.h, model_norm.h, engine_layers.json, report.json and report.md.
So OUT serves as ``--model OUT`` for host_tools and training, and as ``MODEL_DIR=OUT`` for the
firmware (``make -C firmware BOARD=emu-m4 MODEL_DIR=OUT``). Calibration and checks use simulated
epochs of generated subjects (never in the training cohort), or the recordings of ``--data``
when given. TensorFlow's log is captured (converter.quiet): only its errors are shown.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from sleepdata import hypnogen
from sleepdata.normalise import INPUT_SCALE, input_transform
from sleepdata.progress import progress
from sleepdata.provenance import describe, label
from sleepdata.psg import Recording, discover_pairs, load_recording, pair_for
from sleepdata.simulator import simulate_from_hypnogram
from sleepdata.tflm import TflmRunner
from training.model import load_model, summary

from . import codegen
from .export import export_onnx, keras_parity, to_int8_tflite
from .graph import read_tflite
from .lowering import param_arrays
from .native import NativeEngine, first_mismatches
from .plan import make_plan
from .quiet import captured_native_output

#: a model folder's own files, copied into OUT (config.json and weights.pt are required)
MODEL_FILES = ("config.json", "weights.pt", "metrics.json", "MODEL_CARD.md")

TARGETS = {
    "tflm_bitexact": 1.0,
    "activation_ratio_max": 1 / 3,
    "acc_drop_max_points": 0.5,
    "weights_bytes_max": 16 * 1024,
}


def simulated_recordings(n_nights: int, seed: int) -> list[Recording]:
    """Nights of generated subjects (90+), simulated and loaded: labelled, never trained on."""
    with tempfile.TemporaryDirectory(prefix="converter-") as tmp:
        hyps = hypnogen.generated_hypnograms(Path(tmp), n_nights, seed)
        recs = []
        for hyp in progress(hyps, desc="simulate check nights", unit="night"):
            psg, hyp_copy = simulate_from_hypnogram(hyp, Path(tmp) / "psg", seed=seed)
            recs.append(load_recording(pair_for(psg, hyp_copy)))
    return recs


def check_inputs(x: np.ndarray, epochs_uv: np.ndarray, transform, rng, n_min: int) -> dict:
    """The inputs the engine is checked on: real-looking epochs of every stage, noisy ones,
    all-zero, full-scale saturating patterns and random int8."""
    n = x.shape[1] * x.shape[2]
    noisy = transform(
        epochs_uv[rng.choice(len(epochs_uv), 400)] + rng.normal(0, 30, (400, *epochs_uv.shape[1:]))
    )
    extremes = [
        np.zeros(n),
        np.full(n, 127),
        np.full(n, -128),
        np.tile([-128, 127], n // 2),
        np.tile([127, 127, -128, -128], n // 4),
    ]
    extremes += list(rng.choice([-128, 127], (20, n)))
    rand = rng.integers(-128, 128, (max(n_min - len(x) - 400 - 25, 100), n))
    sets = {
        "simulated": x,
        "noisy": noisy,
        "extreme": np.array(extremes).reshape(-1, *x.shape[1:]),
        "random": rand.reshape(-1, *x.shape[1:]),
    }
    return {k: v.astype(np.int8) for k, v in sets.items()}


def litert_outputs(flat: bytes, x_int8: np.ndarray) -> np.ndarray:
    import tensorflow as tf

    interp = tf.lite.Interpreter(model_content=flat)
    interp.allocate_tensors()
    i, o = interp.get_input_details()[0], interp.get_output_details()[0]
    out = []
    for x in x_int8:
        interp.set_tensor(i["index"], x.reshape(i["shape"]))
        interp.invoke()
        out.append(interp.get_tensor(o["index"]).reshape(-1))
    return np.array(out, dtype=np.int8)


def tool_versions() -> dict[str, str]:
    from importlib.metadata import version

    import onnxruntime
    import tensorflow as tf

    return {
        "torch": torch.__version__,
        "tensorflow": tf.__version__,
        "tflite-micro": version("tflite-micro"),
        "onnxruntime": onnxruntime.__version__,
    }


def copy_model_files(model_dir: Path, out: Path) -> list[str]:
    """Copy MODEL_FILES that exist from ``model_dir`` into ``out`` (nothing when they are the
    same folder); the names copied."""
    if out.resolve() == model_dir.resolve():
        return []
    copied = []
    for name in MODEL_FILES:
        if (model_dir / name).is_file():
            shutil.copyfile(model_dir / name, out / name)
            copied.append(name)
    return copied


def build(
    model_dir: str | Path,
    out: str | Path,
    *,
    data: str | Path | None = None,
    n_check: int = 2000,
    seed: int = 0,
    compose_shortcut: bool = True,
) -> dict:
    model_dir, out = Path(model_dir), Path(out)
    model, config = load_model(model_dir)  # (a folder that is not a model fails before OUT)
    out.mkdir(parents=True, exist_ok=True)
    transform = input_transform(config["normalisation"])
    pairs = discover_pairs(data) if data else []
    recs = [load_recording(p) for p in pairs] if data else simulated_recordings(3, seed)
    # where the accuracy figures come from: the files' own marks, or the generated nights
    provenance = describe([p.psg for p in pairs]) if data else {
        "data": "simulated", "files": {"simulated": len(recs)}, "label": label("simulated", {})
    }  # fmt: skip
    rng = np.random.default_rng(seed)
    calib_uv = recs[0].epochs
    calib = transform(calib_uv[rng.choice(len(calib_uv), min(300, len(calib_uv)), replace=False)])
    held = recs[1:] if len(recs) > 1 else recs
    held_uv = np.concatenate([r.epochs for r in held])
    x_eval = transform(held_uv)
    y_eval = np.concatenate([r.labels for r in held])

    # float references
    with captured_native_output("ONNX export"):
        onnx_diff = export_onnx(model, out / "model.onnx", x_eval[:16] * INPUT_SCALE)
    with captured_native_output("int8 TFLite conversion (TensorFlow)"):
        flat, kmodel = to_int8_tflite(model, calib, compose_shortcut)
        keras_diff = keras_parity(model, kmodel, x_eval[:16] * INPUT_SCALE)
    (out / "model_int8.tflite").write_bytes(flat)
    graph = read_tflite(flat)
    plan = make_plan(graph)  # checks every op against TFLite Micro and the engine
    with captured_native_output("TFLite Micro runtime"):
        tflm = TflmRunner(flat)
        arena = tflm.arena_bytes()
        versions = tool_versions()
    model_macs = summary(model)["macs"]
    fewer = model_macs if model_macs != sum(s.macs for s in plan.steps) else None
    codegen.write_sources(
        out, plan, flat, versions, arena, config["normalisation"]["channels"], fewer
    )

    # int8 checks: C engine vs TFLM runtime (bit-exact), LiteRT vs TFLM, accuracy
    sets = check_inputs(x_eval, held_uv, transform, rng, n_check)
    engine = NativeEngine(out, out / "native")
    per_set, mismatches = {}, []
    all_tflm, all_engine = [], []
    for name, xs in sets.items():
        want = tflm.run(xs)
        got = engine.run(xs, want.shape[1])
        per_set[name] = {"n": len(xs), "bitexact": float(np.mean((got == want).all(axis=1)))}
        mismatches += [f"{name} {m}" for m in first_mismatches(got, want)]
        all_tflm.append(want)
        all_engine.append(got)
    tflm_out, engine_out = np.concatenate(all_tflm), np.concatenate(all_engine)
    n_checked = len(tflm_out)
    bitexact = float(np.mean((tflm_out == engine_out).all(axis=1)))
    with captured_native_output("LiteRT check (TensorFlow)"):
        lite = litert_outputs(flat, sets["simulated"][:500])
    # (the simulated set comes first in tflm_out; it may hold fewer than 500 epochs)
    litert_diff = int(np.abs(lite.astype(int) - tflm_out[: len(lite)].astype(int)).max())
    with torch.no_grad():
        float_logits = model(torch.from_numpy(x_eval.astype(np.float32) * INPUT_SCALE)).numpy()
    int8_pred = tflm_out[: len(x_eval)].argmax(axis=1)
    float_pred = float_logits.argmax(axis=1)
    weights = sum(
        len(v) * (1 if k in ("filter", "weights") else 4)
        for s in plan.steps
        for k, v in param_arrays(s.params)
        if k in ("filter", "weights", "bias")
    )
    report = {
        "model": str(model_dir),
        "model_hash": codegen.model_hash(flat),
        "tools": versions,
        "ops": dict(Counter(op.kind for op in graph.ops)),
        "shortcut": "composed" if compose_shortcut else "as trained",
        "macs": {
            "total": sum(s.macs for s in plan.steps),
            # the trained network's count (the published figure, and what peers' cycles per
            # MAC divide by); "total" is what the int8 graph computes
            "model": model_macs,
            "per_layer": [
                {
                    "layer": s.layer,
                    "kind": s.label,
                    "macs": s.macs,
                    "parts": [f"{q.kind}:{q.layer}" for q in s.parts],
                }
                for s in plan.steps
            ],
        },
        "engine_layers": len(plan.steps),
        "engine_fused_layers": sum(1 for s in plan.steps if s.parts),
        "weights_bytes": weights,
        "flatbuffer_bytes": len(flat),
        "tflm_arena_bytes": arena,
        "engine_activation_bytes": plan.activation_bytes,
        "engine_arena_bytes": plan.arena_bytes,
        "n_checked": n_checked,
        "tflm_bitexact": bitexact,
        "checked_sets": per_set,
        "first_mismatches": mismatches[:10],
        "litert_max_lsb_diff": litert_diff,
        "onnx_max_abs_diff": onnx_diff,
        "keras_max_abs_diff": keras_diff,
        "eval_epochs": len(y_eval),
        "eval_data": str(data) if data else "simulated nights of generated subjects (90+)",
        "data_provenance": provenance,
        "float_acc": float(np.mean(float_pred == y_eval)),
        "int8_acc": float(np.mean(int8_pred == y_eval)),
        "argmax_agreement_int8_vs_float": float(np.mean(int8_pred == float_pred)),
        "targets": TARGETS,
    }
    report["targets_met"] = {
        "tflm_bitexact": bitexact == 1.0,
        "activation_ratio": plan.activation_bytes <= arena * TARGETS["activation_ratio_max"],
        "int8_acc_within_0.5_points": (report["float_acc"] - report["int8_acc"]) * 100 <= 0.5,
        "weights_bytes": weights <= TARGETS["weights_bytes_max"],
    }
    (out / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    (out / "report.md").write_text(render_markdown(report))
    copy_model_files(model_dir, out)
    return report


def render_markdown(r: dict) -> str:
    ok = r["targets_met"]
    mark = {True: "met", False: "NOT MET"}
    lines = [
        "# Converter report",
        "",
        f"Model `{r['model']}`, int8 flatbuffer sha256 `{r['model_hash'][:16]}...` "
        f"({r['flatbuffer_bytes']:,} bytes).",
        "Tools: " + ", ".join(f"{k} {v}" for k, v in r["tools"].items()) + ".",
        "",
        "| target | goal | measured | |",
        "|---|---|---|---|",
        f"| C engine = TFLite Micro runtime | 100 % of inputs | "
        f"{100 * r['tflm_bitexact']:.2f} % of {r['n_checked']:,} | {mark[ok['tflm_bitexact']]} |",
        f"| engine activation RAM | <= 1/3 of TFLM arena ({r['tflm_arena_bytes']:,} B) | "
        f"{r['engine_activation_bytes']:,} B "
        f"({r['engine_activation_bytes'] / r['tflm_arena_bytes']:.1%}) | "
        f"{mark[ok['activation_ratio']]} |",
        f"| int8 accuracy vs float | within 0.5 points | {100 * r['int8_acc']:.2f} % vs "
        f"{100 * r['float_acc']:.2f} % | {mark[ok['int8_acc_within_0.5_points']]} |",
        f"| weights | <= 16 KB | {r['weights_bytes']:,} B | {mark[ok['weights_bytes']]} |",
        "",
        "- Ops: " + ", ".join(f"{k} x{v}" for k, v in r["ops"].items()),
        f"- MACs: {r['macs']['total']:,} per epoch computed by the int8 graph "
        f"(shortcut streams {r['shortcut']}); the trained network's: {r['macs']['model']:,}",
        f"- Engine: {r['engine_layers']} steps ({r['engine_fused_layers']} fused), arena "
        f"{r['engine_arena_bytes']:,} B, activations {r['engine_activation_bytes']:,} B",
        f"- Argmax agreement int8 vs float: {100 * r['argmax_agreement_int8_vs_float']:.2f} % "
        f"on {r['eval_epochs']:,} epochs ({r['eval_data']}; {r['data_provenance']['label']}).",
        f"- LiteRT (tf.lite, optimised kernels) vs TFLite Micro: max {r['litert_max_lsb_diff']} "
        "LSB (why the reference is the TFLM runtime).",
        f"- ONNX vs PyTorch: {r['onnx_max_abs_diff']:.1e}; Keras mirror vs PyTorch: "
        f"{r['keras_max_abs_diff']:.1e} (max abs logit difference).",
        "",
        "| checked set | inputs | bit-exact |",
        "|---|---|---|",
        *[
            f"| {k} | {v['n']:,} | {100 * v['bitexact']:.2f} % |"
            for k, v in r["checked_sets"].items()
        ],
    ]
    if r["first_mismatches"]:
        lines += ["", "First mismatches:", *[f"- {m}" for m in r["first_mismatches"]]]
    return "\n".join(lines) + "\n"
