"""Compile a fitted model to ONNX for the serving engine: the forest through skl2onnx, boosted
trees through the graph built here.

Both take a float32 input `X` (n, 29) and give an (n, 2) output whose second column is the raw
score (fraud_model.engines): the forest's `probabilities` (mean P(fraud) over its trees, no
ZipMap), the boosted trees' `scores` (the log-odds of fraud, as decision_function gives them: a
probability would lose the small ones, which onnxruntime's float32 logistic rounds to multiples of
6e-8).

Why boosted trees are not converted by skl2onnx: its HistGradientBoostingClassifier converter
(1.20.0, the newest release) fails on onnx 1.23: it passes a leaf's missing-value flag as a Python
bool, which onnx's attribute builder refuses ("Expected an int, got a boolean"). The graph below is
the one that converter means to build (TreeEnsembleClassifier, one score per leaf), but giving the
log-odds instead of a probability (above), with the input cast to double and the thresholds, leaf
values and baseline kept as doubles: the comparisons and the sum over the trees are in float64, as
scikit-learn's are; only the score that comes out is float32 (TreeEnsembleClassifier's output
type), as the forest's probability is.
"""

from typing import Any

import numpy as np
from onnx import TensorProto, helper
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier

from fraud_model.features import FEATURE_DTYPE

# onnxruntime runs TreeEnsembleClassifier on doubles from ai.onnx.ml opset 3 on.
ML_OPSET = 3
ONNX_OPSET = 17


def forest_to_onnx(forest: RandomForestClassifier) -> bytes:
    """ONNX bytes: float32 input `X` (n, 29), a plain `probabilities` output (no ZipMap)."""
    from skl2onnx import to_onnx

    # The forest's own width: a wrong-width model is refused by save_artifact, not hidden here.
    example = np.zeros((1, forest.n_features_in_), dtype=FEATURE_DTYPE)
    model = to_onnx(forest, example, options={id(forest): {"zipmap": False}})
    serialized: bytes = model.SerializeToString()
    return serialized


def boosted_trees_to_onnx(model: HistGradientBoostingClassifier) -> bytes:
    """ONNX bytes of a binary HistGradientBoostingClassifier on numeric features: output
    `scores`, whose second column is the log-odds of fraud (baseline + the trees' leaf values),
    as its decision_function computes it."""
    check_boosted_trees(model)
    attributes: dict[str, list[Any]] = {
        name: []
        for name in (
            "nodes_treeids", "nodes_nodeids", "nodes_featureids", "nodes_modes", "nodes_values",
            "nodes_truenodeids", "nodes_falsenodeids", "nodes_missing_value_tracks_true",
            "class_treeids", "class_nodeids", "class_ids", "class_weights",
        )
    }  # fmt: skip
    for tree_id, (predictor,) in enumerate(model._predictors):
        for node_id, node in enumerate(predictor.nodes):
            leaf = bool(node["is_leaf"])
            attributes["nodes_treeids"].append(tree_id)
            attributes["nodes_nodeids"].append(node_id)
            attributes["nodes_featureids"].append(0 if leaf else int(node["feature_idx"]))
            attributes["nodes_modes"].append("LEAF" if leaf else "BRANCH_LEQ")
            attributes["nodes_values"].append(0.0 if leaf else float(node["num_threshold"]))
            attributes["nodes_truenodeids"].append(0 if leaf else int(node["left"]))
            attributes["nodes_falsenodeids"].append(0 if leaf else int(node["right"]))
            # An int, not a bool: onnx refuses bools in an ints attribute.
            missing_left = 0 if leaf else int(node["missing_go_to_left"])
            attributes["nodes_missing_value_tracks_true"].append(missing_left)
            if leaf:
                attributes["class_treeids"].append(tree_id)
                attributes["class_nodeids"].append(node_id)
                attributes["class_ids"].append(0)  # one score: the fraud class's log-odds
                attributes["class_weights"].append(float(node["value"]))
    doubles = {"nodes_values", "class_weights"}
    settings: dict[str, Any] = {
        "classlabels_int64s": [0, 1],
        "post_transform": "NONE",  # the scores are [-log-odds, log-odds]
        "base_values_as_tensor": _doubles("base_values", [baseline_of(model)]),
    }
    settings |= {f"{name}_as_tensor": _doubles(name, attributes[name]) for name in doubles}
    settings |= {name: values for name, values in attributes.items() if name not in doubles}
    ensemble = helper.make_node(
        "TreeEnsembleClassifier", ["X_double"], ["label", "scores"], domain="ai.onnx.ml",
        **settings,
    )  # fmt: skip
    graph = helper.make_graph(
        [helper.make_node("Cast", ["X"], ["X_double"], to=TensorProto.DOUBLE), ensemble],
        "boosted_trees",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, model.n_features_in_])],
        [
            helper.make_tensor_value_info("label", TensorProto.INT64, [None]),
            helper.make_tensor_value_info("scores", TensorProto.FLOAT, [None, 2]),
        ],
    )
    onnx_model = helper.make_model(
        graph,
        opset_imports=[
            helper.make_opsetid("", ONNX_OPSET),
            helper.make_opsetid("ai.onnx.ml", ML_OPSET),
        ],
        producer_name="fraud-serving training",
    )
    serialized: bytes = onnx_model.SerializeToString()
    return serialized


def check_boosted_trees(model: HistGradientBoostingClassifier) -> None:
    """What the graph above and the reason codes (fraud_model.explain) assume, checked."""
    if list(model.classes_) != [0, 1] or model.n_trees_per_iteration_ != 1:
        raise ValueError(f"expected a binary model with classes [0, 1], got {model.classes_}")
    if any(predictor.nodes["is_categorical"].any() for (predictor,) in model._predictors):
        raise ValueError("categorical splits are not supported: every feature is numeric")


def baseline_of(model: HistGradientBoostingClassifier) -> float:
    """The log-odds every row starts from, before the first tree."""
    return float(np.asarray(model._baseline_prediction).ravel()[0])


def _doubles(name: str, values: list[float]) -> Any:
    return helper.make_tensor(name, TensorProto.DOUBLE, [len(values)], values)
