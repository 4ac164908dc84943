"""MODEL_CARD.md of a fine-tuned model folder, written from the folder's own files.

``python -m training model-card --model models/ulw_sleepnet_rest_as --title "..."
--convert-report build/rest/convert/rest_as/report.json --bench build/rest/bench/rest_as.json``

Every figure comes from a file: the architecture, the fine-tuning options and the selected
epoch from ``config.json``, the test scores from ``metrics.json``, parameters and MACs from the
model itself, flash and RAM from the converter's ``report.json``, instructions per epoch from
``host_tools bench --json`` on the firmware built from the model. A card is therefore never
out of date with the model it describes: regenerate it with the model (``make rest-variants``).
"""

from __future__ import annotations

import json
from pathlib import Path

from sleepdata.metrics import format_metric

from .model import load_model, summary

REFERENCE = "models/ulw_sleepnet"

_OPTION_TEXT = {
    "none": "no augmentation",
    "gaussian": "REST's Gaussian noise (c_g = {gaussian_c:g} of the training std per channel, "
    "zero-mean) on {fraction:.0%} of each batch",
    "rest-published": "{share} replaced by the published REST attack (`rest-published`: "
    "random start in U(+-eps), {attack_iterations} steps of 0.01 uV) at eps {eps_uv:g} uV of "
    "Fpz-Cz, scaled per channel",
    "pgd": "{share} replaced by a real L-inf PGD (`pgd`, {attack_iterations} steps) at "
    "eps {eps_uv:g} uV of Fpz-Cz, scaled per channel",
}


def _recipe(ft: dict, pruned: dict | None) -> list[str]:
    adv = ft.get("adversarial_fraction", 1.0)
    share = "every batch" if adv >= 1 else f"{adv:.0%} of each batch (the rest clean)"
    aug = _OPTION_TEXT[ft["augment"]].format(
        fraction=ft.get("gaussian_fraction", 0.5), share=share, **ft
    )
    n = ft["samples_per_epoch"] or "all"
    lines = [
        f"fine-tuned from `{ft['init']}`: {ft['epochs']} pass(es) over {n} training samples "
        "(30-s epochs, drawn anew each pass), "
        f"Adam (amsgrad) lr {ft['lr']:g} with cosine decay, weight decay {ft['weight_decay']:g}, "
        f"batch {ft['batch_size']}, seed {ft['seed']}",
        aug,
    ]
    if ft["lambda_o"]:
        lines.append(f"spectral term lambda_o = {ft['lambda_o']:g}")
    if ft["lambda_g"]:
        lines.append(f"L1 on BatchNorm gammas lambda_g = {ft['lambda_g']:g} (first stage)")
    if pruned:
        widths = ft.get("prune_widths")
        lines.append(
            f"then {ft['prune_fraction']:.0%} of the DSSC channels removed by one global |gamma| "
            f"threshold (at least {ft['prune_min_fraction']:.0%} per layer"
            + (f", each layer rounded up to a width in {tuple(widths)}" if widths else "")
            + f"), physically pruned and retrained for {ft['retrain_epochs']} pass(es)"
        )
    lines.append(
        f"checkpoint: best mean of clean and `{ft['select_attack']}` (eps "
        f"{ft['select_eps_uv']:g}) validation macro-F1"
    )
    return lines


def render(
    model_dir: str | Path,
    title: str,
    convert_report: str | Path | None = None,
    bench: str | Path | None = None,
) -> str:
    """The card's Markdown text."""
    model_dir = Path(model_dir)
    config = json.loads((model_dir / "config.json").read_text())
    metrics = json.loads((model_dir / "metrics.json").read_text())
    model, _ = load_model(model_dir)
    ref, _ = load_model(REFERENCE)
    s, s_ref = summary(model), summary(ref)
    cfg = model.config
    ft = config.get("finetune")
    if ft is None:
        raise ValueError(f"{model_dir}/config.json has no 'finetune' options: not fine-tuned")
    out = [f"# ULW-SleepNet, {title} (trained on simulated PSG)", "", "## What it is"]
    out.append("- **Recipe** (`make rest-variants`, `python -m training finetune`):")
    out += [f"  - {line};" for line in _recipe(ft, config.get("pruned"))]
    out[-1] = out[-1][:-1] + "."
    out.append(
        f"- **Architecture:** ULW-SleepNet (`training/model.py`), DSSC widths {tuple(cfg.widths)}, "
        f"inner widths {tuple(cfg.inner)} (the shipped model: 8/16/32 and 8/16/32)."
    )
    ratio = (
        f" ({s_ref['macs'] / s['macs']:.2f}x fewer than the shipped model's {s_ref['macs']:,})"
        if s["macs"] != s_ref["macs"]
        else " (as the shipped model)"
    )
    out.append(
        f"- **Size:** {s['params']:,} trainable parameters, {s['macs']:,} MACs per 30-s "
        f"epoch{ratio}."
    )
    if convert_report:
        r = json.loads(Path(convert_report).read_text())
        out.append(
            f"- **int8 (converter report):** weights {r['weights_bytes']:,} B of flash, "
            f"engine activation RAM {r['engine_activation_bytes']:,} B; C engine = TFLite Micro "
            f"on {r['tflm_bitexact']:.0%} of {r['n_checked']:,} inputs."
        )
    if bench:
        b = json.loads(Path(bench).read_text())
        out.append(
            f"- **On the emulated board ({b['board']}):** {b['inference']['median']:,} "
            f"instructions per inference (+ {b['preprocess']['median']:,} for preprocessing); "
            "instructions, not cycles (QEMU counts instructions)."
        )
    out += [
        "- **Input / output:** as the shipped model (`models/ulw_sleepnet/MODEL_CARD.md`): int8 "
        "from the fixed-scale integer transform (`config.json` `normalisation`); logits for W, "
        "N1, N2, N3, REM.",
        "- **Files:** `weights.pt`, `config.json` (architecture, normalisation, `signal_stats`: "
        "training-split statistics for the noise evaluation, `finetune` options, split, selected "
        "epoch), `metrics.json` (test subjects, clean), `model_int8.tflite`, `model.onnx`.",
        "",
        f"## Held-out simulated subjects {', '.join(config['split']['test'])} (clean, pooled)",
        "| metric | value |",
        "|---|---|",
        f"| epochs | {sum(sum(row) for row in metrics['confusion']):,} |",
        f"| accuracy | {metrics['acc']:.3f} |",
        f"| macro-F1 | {format_metric(metrics['macro_f1'])} |",
        f"| Cohen's kappa | {format_metric(metrics['kappa'])} |",
        "| per-class F1 | "
        + ", ".join(f"{k} {v:.3f}" for k, v in metrics["per_class_f1"].items())
        + " |",
        "",
        f"Selected epoch {config.get('selected_epoch')} (validation: clean macro-F1 "
        f"{config.get('val_macro_f1', float('nan')):.3f}, adversarial "
        f"{config.get('val_adv_macro_f1', float('nan')):.3f}). Noise robustness on host and on "
        "chip: `docs/robustness.md`.",
        "",
        "**Simulated data, not Sleep-EDF results; do not use this model on real recordings.** "
        "Short fine-tuning on subsamples (a 2-core compute budget), not the paper's 30 epochs "
        "from scratch: `docs/robustness.md`, section 2.",
        "",
        "## Reproduce",
        "`make rest-variants` (the Makefile holds the options above): fine-tunes, converts, "
        "builds the firmware for the emulated board, benchmarks it and writes this card.",
        "",
    ]
    return "\n".join(out)


def write(model_dir: str | Path, title: str, **kwargs) -> Path:
    path = Path(model_dir) / "MODEL_CARD.md"
    path.write_text(render(model_dir, title, **kwargs))
    return path
