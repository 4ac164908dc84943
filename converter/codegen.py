"""C for the firmware, from templates: the engine's per-model code and the flatbuffer array.

Every generated file starts with a banner naming the generator, the model hash and the tool
versions; generated files are never edited by hand (rebuild instead).
"""

from __future__ import annotations

import hashlib
import json
import platform
from dataclasses import dataclass, field
from pathlib import Path

import jinja2

from .fusion import pointwise_lut, separable_uses_lut, shortcut_uses_lut
from .lowering import Step
from .plan import Plan

TEMPLATES = Path(__file__).parent / "templates"

# One C call per kernel kind; {in0}/{in1}/{out} are buffer expressions, {p} the step's params,
# {s} the step index (constant arrays are s<index>_<name>).
_CALLS = {
    "depthwise": "engine_depthwise_conv_s8({in0}, {p[len_in]}, {p[channels]}, s{s}_filter, "
    "{bias}, {p[kernel]}, {p[stride]}, {p[pad_left]}, {p[input_offset]}, "
    "{p[output_offset]}, s{s}_mult, s{s}_shift, {p[act_min]}, {p[act_max]}, {out}, "
    "{p[len_out]})",
    "pointwise": "engine_conv_1x1_s8({in0}, {p[len_in]}, {p[in_channels]}, s{s}_filter, {bias}, "
    "{p[out_channels]}, {p[input_offset]}, {p[output_offset]}, s{s}_mult, "
    "s{s}_shift, {p[act_min]}, {p[act_max]}, {out})",
    "max_pool": "engine_max_pool_s8({in0}, {p[len_in]}, {p[channels]}, {p[window]}, "
    "{p[stride]}, {p[pad_left]}, {p[act_min]}, {p[act_max]}, {out}, {p[len_out]})",
    "avg_pool": "engine_avg_pool_s8({in0}, {p[len_in]}, {p[channels]}, {p[window]}, "
    "{p[stride]}, {p[pad_left]}, {p[act_min]}, {p[act_max]}, {out}, {p[len_out]})",
    "add": "engine_add_s8({in0}, {in1}, {p[n]}, {p[a_offset]}, {p[a_mult]}, {p[a_shift]}, "
    "{p[b_offset]}, {p[b_mult]}, {p[b_shift]}, {p[left_shift]}, {p[out_offset]}, "
    "{p[out_mult]}, {p[out_shift]}, {p[act_min]}, {p[act_max]}, {out})",
    "fully_connected": "engine_fully_connected_s8({in0}, {p[in_features]}, s{s}_weights, {bias}, "
    "{p[out_features]}, {p[input_offset]}, {p[filter_offset]}, "
    "{p[output_offset]}, s{s}_mult, s{s}_shift, {p[act_min]}, {p[act_max]}, "
    "{out})",
}
_FUSED_CALLS = {
    "separable": "engine_separable_s8(&s{s}_unit, {in0}, {p[len_in]}, {p[len_mid]}, {pool}, {out}, "
    "{p[len_out]})",
    "shortcut_add": "engine_shortcut_add_s8(&s{s}_first, {second}, &s{s}_add, {in0}, "
    "{p[len_in]}, {p[len_first]}, {in1}, {out}, {p[len_out]}, engine_arena + {scratch}, "
    "ENGINE_SHORTCUT_SCRATCH_BYTES)",
}
_ARRAYS = {
    "filter": "int8_t",
    "weights": "int8_t",
    "bias": "int32_t",
    "mult": "int32_t",
    "shift": "int32_t",
}
_ADD_FIELDS = ("a_offset", "a_mult", "a_shift", "b_offset", "b_mult", "b_shift", "left_shift",
               "out_offset", "out_mult", "out_shift", "act_min", "act_max")  # fmt: skip


@dataclass
class StructView:
    """A `static const` struct initialiser: C type, name, (field, value) pairs."""

    ctype: str
    name: str
    fields: list[tuple[str, str | int]]


@dataclass
class StepView:
    """One step as engine_model.c.j2 renders it: its constants and its kernel call."""

    index: int
    name: str  # "kind:layer", as in engine_model_layer_names
    phase: str
    arrays: list[tuple[str, str, list[int]]]  # (C name, C type, values)
    call: str
    structs: list[StructView] = field(default_factory=list)


def _buffer(plan: Plan, tensor: int, phase: str) -> str:
    if tensor == plan.input_tensor:
        return "row_in"
    if tensor == plan.feature_tensor:
        return "features_out" if phase == "row" else "engine_features"
    if tensor == plan.output_tensor:
        return "output"
    if tensor in plan.head_buffers:
        return f"engine_head_{tensor}"
    return f"engine_arena + {plan.offsets[tensor]}"


def _arrays(prefix: str, params: dict) -> list[tuple[str, str, list[int]]]:
    return [
        (f"{prefix}_{name}", _ARRAYS[name], list(params[name]))
        for name in _ARRAYS
        if isinstance(params.get(name), list)
    ]


def _unit_struct(name: str, prefix: str, dw: dict, pw: dict, lut: str | None = None) -> StructView:
    """engine_separable_s8_t of a depthwise -> pointwise pair (arrays named prefix_dw_...);
    lut: the name of its pw_lut array, if any."""

    def arr(part: str, key: str, params: dict) -> str:
        return f"{prefix}_{part}_{key}" if isinstance(params.get(key), list) else "0"

    return StructView(
        "engine_separable_s8_t",
        name,
        [
            ("in_channels", dw["channels"]),
            ("out_channels", pw["out_channels"]),
            ("kernel", dw["kernel"]),
            ("stride", dw["stride"]),
            ("pad_left", dw["pad_left"]),
            *[(f"dw_{k}", arr("dw", k, dw)) for k in ("filter", "bias", "mult", "shift")],
            ("dw_input_offset", dw["input_offset"]),
            ("dw_output_offset", dw["output_offset"]),
            ("dw_act_min", dw["act_min"]),
            ("dw_act_max", dw["act_max"]),
            *[(f"pw_{k}", arr("pw", k, pw)) for k in ("filter", "bias", "mult", "shift")],
            ("pw_output_offset", pw["output_offset"]),
            ("pw_act_min", pw["act_min"]),
            ("pw_act_max", pw["act_max"]),
            ("pw_lut", lut or "0"),
        ],
    )


def step_view(plan: Plan, i: int, step: Step) -> StepView:
    p = step.params
    ins = [_buffer(plan, t, step.phase) for t in step.inputs]
    buffers = {
        "in0": ins[0],
        "in1": ins[1] if len(ins) > 1 else "",
        "out": _buffer(plan, step.output, step.phase),
    }
    structs: list[StructView] = []
    if step.kind == "separable":
        arrays = _arrays(f"s{i}_dw", p["dw"]) + _arrays(f"s{i}_pw", p["pw"])
        lut = None
        if separable_uses_lut(p["dw"], p["pw"], p["pool"] is not None):
            # In flash: engine_separable_s8 then needs no 2 KB table on the stack.
            lut = f"s{i}_pw_lut"
            arrays.append((lut, "int8_t", pointwise_lut(p["pw"])))
        structs.append(_unit_struct(f"s{i}_unit", f"s{i}", p["dw"], p["pw"], lut))
        pool = "0"
        if p["pool"] is not None:
            pool = f"&s{i}_pool"
            structs.append(
                StructView(
                    "engine_max_pool2_s8_t",
                    f"s{i}_pool",
                    [("act_min", p["pool"]["act_min"]), ("act_max", p["pool"]["act_max"])],
                )
            )
        call = _FUSED_CALLS["separable"].format(p=p, s=i, pool=pool, **buffers)
    elif step.kind == "shortcut_add":
        arrays = []
        for unit in ("first", "second"):
            u = p[unit]
            if u is None:  # a one-unit stream
                continue
            arrays += _arrays(f"s{i}_{unit}_dw", u["dw"]) + _arrays(f"s{i}_{unit}_pw", u["pw"])
            lut = None
            if p["second"] is None and shortcut_uses_lut(u["dw"], u["pw"]):
                lut = f"s{i}_first_pw_lut"  # in flash, as for a separable unit
                arrays.append((lut, "int8_t", pointwise_lut(u["pw"])))
            structs.append(_unit_struct(f"s{i}_{unit}", f"s{i}_{unit}", u["dw"], u["pw"], lut))
        structs.append(
            StructView(
                "engine_add_s8_params_t", f"s{i}_add", [(k, p["add"][k]) for k in _ADD_FIELDS]
            )
        )
        second = "0" if p["second"] is None else f"&s{i}_second"
        call = _FUSED_CALLS["shortcut_add"].format(
            p=p, s=i, second=second, scratch=step.scratch_offset, **buffers
        )
    else:
        arrays = _arrays(f"s{i}", p)
        bias = f"s{i}_bias" if isinstance(p.get("bias"), list) else "0"
        call = _CALLS[step.kind].format(p=p, s=i, bias=bias, **buffers)
    return StepView(i, step.name, step.phase, arrays, call, structs)


def _carray(values, per_line: int = 12, fmt: str = "%d") -> str:
    items = [fmt % v for v in values]
    return "\n".join(
        "    " + ", ".join(items[k : k + per_line]) + "," for k in range(0, len(items), per_line)
    )


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["carray"] = _carray
    return env


#: The command that writes engine_model.c/.h, model_norm.h, model_data.c/.h and
#: engine_layers.json (named in their banners and in engine_layers.json).
GENERATOR = "python -m converter build"
#: Beside the generated C: the engine's layer names and MACs, so that tools labelling per-layer
#: counters need not parse C.
LAYERS_FILE = "engine_layers.json"


def banner(model_hash: str, versions: dict[str, str], generator: str = GENERATOR) -> str:
    """The comment every generated C file starts with: generator, model hash, tool versions."""
    tools = ", ".join(f"{k} {v}" for k, v in sorted(versions.items()))
    return (
        f"/* Generated by `{generator}` (ulw-sleepnet-mcu converter). DO NOT EDIT.\n"
        f" * Model: sha256 {model_hash} (model_int8.tflite)\n"
        f" * Tools: {tools}; Python {platform.python_version()}\n */"
    )


def model_hash(flatbuffer: bytes) -> str:
    """Hex SHA-256 of the .tflite flatbuffer: the model's identity in every artefact."""
    return hashlib.sha256(flatbuffer).hexdigest()


def engine_layers(plan: Plan) -> list[dict]:
    """One {"name": "<kind>:<layer>", "macs": MACs per input} per engine step, in step order:
    the one list behind engine_model_layer_names, engine_model_layer_macs and
    engine_layers.json."""
    return [{"name": s.name, "macs": int(s.macs)} for s in plan.steps]


def layers_json(layers: list[dict], model_sha256: str, model_macs: int | None = None) -> str:
    """The text of engine_layers.json (one-space indent, trailing newline). model_macs: the
    trained network's MACs per epoch, when the graph computes fewer (a composed shortcut)."""
    doc = {"generator": GENERATOR, "model_sha256": model_sha256, "layers": layers}
    if model_macs is not None:
        doc["model_macs"] = int(model_macs)
    return json.dumps(doc, indent=1) + "\n"


def write_sources(
    out: Path,
    plan: Plan,
    flatbuffer: bytes,
    versions: dict[str, str],
    tflm_arena: int,
    norm: list[dict],
    model_macs: int | None = None,
) -> list[Path]:
    """engine_model.c/.h (the firmware's engine), model_norm.h (its input normalisation and
    model hash), model_data.c/.h (the flatbuffer, for TFLite Micro users) and
    engine_layers.json (the engine's layer names and MACs)."""
    env = environment()
    h = model_hash(flatbuffer)
    layers = engine_layers(plan)
    pooled = plan.tensors[plan.feature_tensor]
    ctx = {
        "banner": banner(h, versions),
        "plan": plan,
        "steps": [step_view(plan, i, s) for i, s in enumerate(plan.steps)],
        "layers": layers,
        "model_hash": h,
        "output": plan.tensors[plan.output_tensor],
        "row_features": pooled.shape[-1],
        "data": list(flatbuffer),
        "arena": tflm_arena,
        "norm": norm,
        "hash8": [f"0x{b:02x}" for b in bytes.fromhex(h)[:8]],
    }
    written = []
    for name in (
        "engine_model.h",
        "engine_model.c",
        "model_norm.h",
        "model_data.h",
        "model_data.c",
    ):
        path = out / name
        path.write_text(env.get_template(name + ".j2").render(**ctx))
        written.append(path)
    path = out / LAYERS_FILE
    path.write_text(layers_json(layers, h, model_macs))
    written.append(path)
    return written
