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
from dataclasses import asdict
from pathlib import Path

from torch import nn

from sleepdata.metrics import format_metric
from sleepdata.provenance import SIMULATED, of_result

from .model import ModelConfig, ULWSleepNet, load_model, summary
from .recipes import ORIGINAL, profiler_flops
from .train import TrainConfig

REFERENCE = "models/ulw_sleepnet"

_ATTACK_TEXT = {
    "paper": "the paper's attack (eq. 2: from X, {attack_iterations} steps of eps, clipped)",
    "rest-code": "REST code's attack (random start in U(+-eps), {attack_iterations} steps of "
    "0.01 uV)",
    "pgd": "a standard L-inf PGD ({attack_iterations} steps of 2.5 eps / iterations)",
}
_ATTACK_TEXT["rest-published"] = _ATTACK_TEXT["rest-code"]  # the name before the paper's
_OPTION_TEXT = {
    "none": "no augmentation (clean epochs)",
    "gaussian": "Gaussian noise as the paper's eq. 8 (zero-mean, c_g = {gaussian_c:g} of the "
    "training std per channel) on {fraction:.0%} of each batch",
    **{
        kind: "{share} replaced by its adversarial version: " + text + " at eps {eps_uv:g} uV "
        "of Fpz-Cz, scaled per channel"
        for kind, text in _ATTACK_TEXT.items()
    },
}


def _optimiser_text(ft: dict) -> str:
    if ft.get("optimizer", "adam") == "sgd":
        return (
            f"SGD (momentum {ft.get('momentum', 0.9):g}) lr {ft['lr']:g}, divided by 10 after "
            "one and two thirds of each stage"
        )
    return f"Adam (amsgrad) lr {ft['lr']:g} with cosine decay"


def _pruned_text(pruned: dict) -> str:
    """What the pruning actually removed (config.json ``pruned``, training/slimming.py)."""
    sep = pruned.get("separation") or {}
    text = (
        f"pruning removed {pruned['removed']} of {pruned['channels']} DSSC channels "
        f"({pruned['fraction_removed']:.1%}; `pruning.json` and `gammas.png`, the gammas before "
        "and after sparsity training, are beside this card)"
    )
    if sep.get("median_kept") is not None and sep.get("median_removed") is not None:
        text += (
            f"; threshold |gamma| {pruned['plan']['threshold']:.3g}: median |gamma| of the "
            f"removed channels {sep['median_removed']:.2g}, of the kept {sep['median_kept']:.2g}"
        )
    return text


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
        f"{_optimiser_text(ft)}, weight decay {ft['weight_decay']:g}, "
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
            + f"), physically pruned and retrained for {ft['retrain_epochs']} pass(es) with the "
            "same terms but the sparsity term"
        )
        if "removed" in pruned:
            lines.append(_pruned_text(pruned))
    lines.append(
        f"checkpoint: best mean of clean and `{ft['select_attack']}` (eps "
        f"{ft['select_eps_uv']:g}) validation macro-F1"
    )
    return lines


# ------------------------------------------------------------------------------------------
# Deviations from the original training (training/recipes.py, "paper")

_WHY_TEST_FOLD = "choosing on the test fold leaks the test set into the reported score"
_WHY_MACRO_F1 = "macro-F1, because accuracy rewards the majority stage N2 and ignores N1"
_OPTION_NAMES = {
    "lr": ("learning rate", "{:g}"),
    "restart_steps": ("first warm-restart period (batches)", "{}"),
    "weight_decay": ("weight decay", "{:g}"),
    "class_weights": ("class weights in the loss", "{}"),
}


def _subjects(keys: list[str]) -> str:
    return ", ".join(k.removeprefix("subject-") for k in keys) or "none"


def _common_rows(config: dict) -> list[tuple[str, str, str, str]]:
    """Normalisation, folds and architecture: the rows of every model, trained or fine-tuned."""
    norm = config["normalisation"]["kind"]
    ours = (
        "per-epoch, per-channel integer normalisation to int8 (`normalisation` in config.json)"
        if norm != "zscore"
        else "per-epoch, per-channel z-score to int8"
    )
    split = config["split"]
    rows = [
        (
            "input",
            "raw microvolts, no filtering, no normalisation",
            ours,
            "int8 deployment: EEG, EOG and the EMG envelope have very different ranges and would "
            "share one input scale; the device computes this transform in integer arithmetic",
        ),
        (
            "folds",
            "over recordings (two nights of a subject can be in train and test); recordings "
            "left over by n mod k dropped",
            f"subject-wise ({split['name']}): test subjects {_subjects(split['test'])}, "
            f"validation {_subjects(split['val'])}, training {_subjects(split['train'])}",
            "no subject's nights on two sides of the split",
        ),
    ]
    model = ModelConfig.from_dict(config["model"])
    if (model.widths, model.inner) != ((8, 16, 32), (8, 16, 32)):
        rows.append(
            (
                "architecture",
                "DSSC widths 8/16/32",
                f"widths {tuple(model.widths)}, inner widths {tuple(model.inner)} (pruned)",
                "REST's sparsity term, then channels pruned for a smaller model",
            )
        )
    return rows


def _bn_momentum_row(momentum: float, why: str) -> tuple[str, str, str, str]:
    return (
        "BatchNorm momentum",
        "0.99 (Keras; PyTorch 0.01)",
        f"{1 - momentum:g} (Keras terms; PyTorch {momentum:g})",
        why,
    )


def _trained_rows(config: dict) -> list[tuple[str, str, str, str]]:
    """Rows of a model trained from scratch (config.json ``train_config``; options recorded
    before they existed count as their default, as when resuming)."""
    tc = {**asdict(TrainConfig()), **config["train_config"]}
    project = tc["recipe"] == "project"

    def why(key: str, project_reason: str) -> str:
        """The project's reason for its own default; otherwise an option set for this run."""
        if project and tc[key] == getattr(TrainConfig, key):
            return project_reason
        return f"set for this run (option `{key}`)"

    selected, epochs = config.get("selected_epoch"), tc["epochs"]
    budget = "fits the 2-core compute budget"
    if project and epochs < ORIGINAL["epochs"]:
        why_epochs = (
            f"{budget} and converged on validation (best epoch {selected} of {epochs})"
            if selected is not None and selected < epochs
            else f"{budget} (the best validation epoch was the last: longer training may help)"
        )
    else:
        why_epochs = why("epochs", "")
    rows = []
    if tc["batch_size"] != ORIGINAL["batch_size"]:
        rows.append(
            ("batch", str(ORIGINAL["batch_size"]), str(tc["batch_size"]), why("batch_size", budget))
        )
    if tc["epochs"] != ORIGINAL["epochs"]:
        rows.append(("epochs", str(ORIGINAL["epochs"]), str(epochs), why_epochs))
    if tc.get("samples_per_epoch"):
        rows.append(
            (
                "samples per epoch",
                "every training epoch",
                f"{tc['samples_per_epoch']:,} drawn anew each epoch",
                why("samples_per_epoch", ""),
            )
        )
    for key, (name, fmt) in _OPTION_NAMES.items():
        if tc[key] != ORIGINAL[key]:
            rows.append((name, fmt.format(ORIGINAL[key]), fmt.format(tc[key]), why(key, "")))
    metric = {"acc": "accuracy", "macro_f1": "macro-F1"}[tc["select"]]
    reason = _WHY_TEST_FOLD + ("; " + _WHY_MACRO_F1 if tc["select"] == "macro_f1" else "")
    rows.append(
        (
            "checkpoint",
            "best epoch by accuracy on the test fold",
            f"best epoch by {metric} on the validation subjects",
            reason,
        )
    )
    shipped = "PyTorch's defaults, what the shipped model was trained with"
    if tc["init"] != ORIGINAL["init"]:
        rows.append(
            (
                "initialisation",
                "Glorot-uniform kernels, zero biases (Keras)",
                "PyTorch's defaults (Kaiming-uniform kernels, uniform biases)",
                why("init", shipped),
            )
        )
    if tc["bn_momentum"] != ORIGINAL["bn_momentum"]:
        rows.append(_bn_momentum_row(tc["bn_momentum"], why("bn_momentum", shipped)))
    return rows


def _finetuned_rows(config: dict) -> list[tuple[str, str, str, str]]:
    """Rows of a fine-tuned model (config.json ``finetune``)."""
    ft = config["finetune"]
    budget = "short fine-tuning on subsamples fits the 2-core compute budget"
    passes = f"{ft['epochs']} pass(es) over {ft['samples_per_epoch'] or 'all'} samples"
    if ft.get("retrain_epochs"):
        passes += f", then {ft['retrain_epochs']} after pruning"
    rows = [
        (
            "start",
            "from scratch, Glorot-uniform initialisation",
            f"fine-tuned from `{ft['init']}`",
            "robustness fine-tuning starts from a trained model",
        ),
        ("batch", str(ORIGINAL["batch_size"]), str(ft["batch_size"]), budget),
        ("epochs", str(ORIGINAL["epochs"]), passes, budget),
    ]
    optimiser = ft.get("optimizer", "adam")
    if optimiser != "adam" or ft["lr"] != ORIGINAL["lr"]:
        rows.append(
            (
                "optimiser",
                f"Adam (amsgrad) lr {ORIGINAL['lr']:g}",
                f"{'Adam (amsgrad)' if optimiser == 'adam' else 'SGD'} lr {ft['lr']:g}",
                "set for fine-tuning (`--lr`, `--optimizer`)",
            )
        )
    rows.append(
        (
            "learning-rate schedule",
            "cosine warm restarts (10 batches, doubling)",
            "cosine decay to 0 over each stage"
            if optimiser == "adam"
            else "divided by 10 after one and two thirds of each stage",
            "one decay per fine-tuning stage",
        )
    )
    if ft["weight_decay"] != ORIGINAL["weight_decay"]:
        rows.append(
            (
                "weight decay",
                "none",
                f"{ft['weight_decay']:g}",
                "set for fine-tuning (`--weight-decay`)",
            )
        )
    if ft["augment"] != "none" or ft.get("lambda_o") or ft.get("lambda_g"):
        terms = [f"augmentation `{ft['augment']}`"] if ft["augment"] != "none" else []
        terms += [f"spectral term {ft['lambda_o']:g}"] if ft.get("lambda_o") else []
        terms += [f"L1 on BatchNorm gammas {ft['lambda_g']:g}"] if ft.get("lambda_g") else []
        rows.append(
            (
                "training signal",
                "clean epochs, cross-entropy only",
                ", ".join(terms),
                "robustness to noise and attacks is what the fine-tuning is for",
            )
        )
    rows.append(
        (
            "checkpoint",
            "best epoch by accuracy on the test fold",
            f"best mean of clean and `{ft['select_attack']}` validation macro-F1",
            f"{_WHY_TEST_FOLD}; robustness counts as much as clean scores; {_WHY_MACRO_F1}",
        )
    )
    # fine-tuning trains the model load_model builds: PyTorch's BatchNorm momentum
    momentum = ft.get("bn_momentum", nn.BatchNorm2d(1).momentum)
    if momentum != ORIGINAL["bn_momentum"]:
        rows.append(
            _bn_momentum_row(momentum, "PyTorch's default, as the shipped model was trained with")
        )
    return rows


def deviations(config: dict) -> list[tuple[str, str, str, str]]:
    """(what, the original, this model, why) for every way the training recorded in a model
    folder's ``config`` (config.json: ``finetune`` or ``train_config``) departs from the
    original ULW-SleepNet training (training/recipes.py, "paper")."""
    if "finetune" in config:
        rows = _finetuned_rows(config)
    elif "train_config" in config:
        rows = _trained_rows(config)
    else:
        raise ValueError("config.json records neither 'train_config' nor 'finetune'")
    return rows + _common_rows(config)


def flops_sentence() -> str:
    """The paper's 7.89 M "FLOPs" reconciled with the MACs, from TensorFlow's profiler rules
    applied to the standard 4-channel model (training/recipes.py, `profiler_flops`)."""
    model = ULWSleepNet()
    fused, unfused = profiler_flops(model)["total"], profiler_flops(model, False)["total"]
    macs = summary(model)["macs"]
    return (
        f'The paper\'s 7.89 M "FLOPs" is not a MAC count: the model has {macs:,} MACs per '
        f"30-s epoch of 4 channels; TensorFlow's profiler counts 2 per MAC plus its element-wise "
        f"ops (bias adds, max-pool comparisons, merge adds, the mean), {fused:,} for this graph "
        f"with fused BatchNorm (which it does not count) and {unfused:,} with unfused "
        f"BatchNorm (a multiply and an add per element), bracketing 7.89 M without matching it "
        "exactly."
    )


def recipe_section(config: dict) -> list[str]:
    """The card's "Training recipe and deviations from the original" section (Markdown lines)."""
    out = [
        "## Training recipe and deviations from the original",
        "Each row is a way this model's recorded training (`config.json`) departs from the "
        "original ULW-SleepNet training (`python -m training train --recipe paper` reproduces "
        "it, with the checkpoint chosen on validation subjects).",
        "",
        "| | original | this model | why |",
        "|---|---|---|---|",
    ]
    out += [f"| {what} | {orig} | {ours} | {why} |" for what, orig, ours, why in deviations(config)]
    return [*out, "", flops_sentence(), ""]


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
    data = of_result(config) or "data not recorded (trained before provenance was kept)"
    simulated = (config.get("data_provenance") or {}).get("data") == SIMULATED
    out = [f"# ULW-SleepNet, {title}", "", f"Trained and tested on {data}.", "", "## What it is"]
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
        f"## Held-out {'simulated ' if simulated else ''}subjects "
        f"{', '.join(config['split']['test'])} (clean, pooled)",
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
        (
            "**Simulated data, not Sleep-EDF results; do not use this model on real recordings.** "
            if simulated
            else ""
        )
        + "Short fine-tuning on subsamples (a 2-core compute budget), not the paper's 30 epochs "
        "from scratch: `docs/robustness.md`, section 2.",
        "",
        *recipe_section(config),
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
