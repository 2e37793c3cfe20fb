"""Request bodies in each peer's own format, and the readers of its answers.

Rows are this service's single-request body: a dict of the 29 features, in FEATURE_NAMES order.
A reading is (fraud probability, decision), the decision None where the peer returns none.
"""

from typing import Any

from fraud_model.features import FEATURE_NAMES

Row = dict[str, float]
Reading = tuple[float, bool | None]


def v2_request(rows: list[Row]) -> dict[str, Any]:
    """Open Inference Protocol (V2) request: one FP32 tensor of shape [n, 29], row-major, its
    columns in FEATURE_NAMES order (the order the forest was fitted on)."""
    data = [float(row[name]) for row in rows for name in FEATURE_NAMES]
    return {
        "inputs": [
            {"name": "input-0", "shape": [len(rows), len(FEATURE_NAMES)], "datatype": "FP32",
             "data": data}
        ]
    }  # fmt: skip


def read_v2_probabilities(answer: dict[str, Any]) -> list[Reading]:
    """predict_proba's [n, 2] tensor (MLServer's sklearn runtime) -> P(fraud), class 1."""
    (output,) = answer["outputs"]
    rows, classes = output["shape"]
    if classes != 2:
        raise ValueError(f"expected predict_proba of 2 classes, got shape {output['shape']}")
    data = output["data"]
    return [(float(data[i * 2 + 1]), None) for i in range(rows)]


def transactions(rows: list[Row]) -> dict[str, Any]:
    """A list of named rows under `transactions` (this service's batch body; BentoML's input for
    an API whose argument is `transactions: list[Transaction]`)."""
    return {"transactions": rows}


def read_answers(answers: list[dict[str, Any]]) -> list[Reading]:
    return [(float(a["fraud_probability"]), bool(a["is_fraud"])) for a in answers]


def read_answer(answer: dict[str, Any]) -> list[Reading]:
    return read_answers([answer])


def read_predictions(answer: dict[str, Any]) -> list[Reading]:
    return read_answers(answer["predictions"])
