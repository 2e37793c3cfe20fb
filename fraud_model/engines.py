"""The serving engine: the model compiled to ONNX, run by onnxruntime.

It returns the model's raw score per row, before the calibration: a forest's mean P(fraud) over
its trees (ONNX output `probabilities`), boosted trees' log-odds of fraud (output `scores`). It
agrees with the scikit-learn model it was exported from within PARITY_TOLERANCE: checked when an
artifact is written, and again on the stored probe rows whenever one is loaded.
"""

from pathlib import Path

import numpy as np

PARITY_TOLERANCE = 1e-5
# The raw-score output of each family's graph (training.export); column 1 is the fraud class's.
RAW_SCORE_OUTPUTS = ("probabilities", "scores")


class OnnxEngine:
    """onnxruntime on the exported model. Loading reads a protobuf: nothing is unpickled."""

    name = "onnx"

    def __init__(self, model: Path | bytes, threads: int = 1) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        # Tree ensembles parallelise across rows; requests are small, so the replica's own CPUs
        # are the most it should use, and no inter-op pool is needed.
        options.intra_op_num_threads = max(1, threads)
        options.inter_op_num_threads = 1
        source = str(model) if isinstance(model, Path) else model
        self._session = onnxruntime.InferenceSession(
            source, options, providers=["CPUExecutionProvider"]
        )
        self._input = self._session.get_inputs()[0].name
        outputs = [output.name for output in self._session.get_outputs()]
        found = [name for name in RAW_SCORE_OUTPUTS if name in outputs]
        if len(found) != 1:
            raise ValueError(
                f"the ONNX graph's outputs are {outputs}; expected exactly one of "
                f"{', '.join(RAW_SCORE_OUTPUTS)}"
            )
        self._output = found[0]

    def raw_fraud_scores(self, features: np.ndarray) -> np.ndarray:
        """The model's raw score for an (n, 29) float32 matrix, as float64."""
        (scores,) = self._session.run([self._output], {self._input: features})
        raw: np.ndarray = scores[:, 1].astype(np.float64)
        return raw
