"""Reading the .tflite and checking it against TFLite Micro: clear errors naming the layer."""

from __future__ import annotations

import numpy as np
import pytest

from converter.graph import Graph, Op, Tensor, UnsupportedModelError, check_tflm

from .conftest import SHIPPED


def test_unsupported_op_is_named_with_its_layer():
    t = [
        Tensor(0, "x", (1, 4), 9, np.array([1.0], np.float32), np.array([0]), None),
        Tensor(
            1, "model/dense_gelu/Gelu", (1, 4), 9, np.array([1.0], np.float32), np.array([0]), None
        ),
    ]
    with pytest.raises(UnsupportedModelError, match=r"op GELU \(layer dense_gelu\)"):
        check_tflm(Graph(t, [Op(0, "GELU", [0], [1])], [0], [1]))
    t[1].dtype = 0
    with pytest.raises(UnsupportedModelError, match="is FLOAT32, expected INT8"):
        check_tflm(Graph(t, [Op(0, "ADD", [0, 0], [1])], [0], [1]))


def test_shipped_model_reads_as_one_int8_graph(shipped_plan):
    graph, _plan = shipped_plan
    (inp,), (out,) = graph.inputs, graph.outputs
    assert graph.tensors[inp].shape == (1, 4, 3000, 1) and graph.tensors[out].shape == (1, 5)
    assert (graph.tensors[inp].scale, graph.tensors[inp].zero_point) == (1 / 16, 0)
    kinds = [op.kind for op in graph.ops]
    # per block: two main units and one composed shortcut unit (converter.keras_mirror)
    assert kinds.count("DEPTHWISE_CONV_2D") == 9 and kinds.count("CONV_2D") == 9
    assert kinds[-3:] == ["RESHAPE", "FULLY_CONNECTED", "FULLY_CONNECTED"]
    assert graph.layer_name(graph.ops[0]).startswith("dssc1_main1_dw")
    conv = next(op for op in graph.ops if op.kind == "CONV_2D")
    weights = graph.tensors[conv.inputs[1]]
    assert weights.data.dtype == np.int8 and weights.data.shape == weights.shape
    assert len(weights.scales) == weights.shape[0]  # per-channel quantisation
    assert SHIPPED.stat().st_size > 30_000  # the flatbuffer itself (36,344 B), not a pointer
