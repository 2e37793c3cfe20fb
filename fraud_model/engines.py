"""The serving engine: the forest compiled to ONNX, run by onnxruntime.

It returns the forest's raw P(fraud) per row, before the prior correction. It agrees with the
scikit-learn forest it was exported from within PARITY_TOLERANCE: checked when an artifact is
written, and again on the stored probe rows whenever one is loaded.
"""

from pathlib import Path

import numpy as np

PARITY_TOLERANCE = 1e-5


class OnnxEngine:
    """onnxruntime on the exported forest. Loading reads a protobuf: nothing is unpickled."""

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

    def raw_fraud_scores(self, features: np.ndarray) -> np.ndarray:
        """The forest's mean-over-trees P(fraud) for an (n, 29) float32 matrix, as float64."""
        (probabilities,) = self._session.run(["probabilities"], {self._input: features})
        scores: np.ndarray = probabilities[:, 1].astype(np.float64)
        return scores
