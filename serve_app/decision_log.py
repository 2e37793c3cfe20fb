"""Every answered decision and every refusal, as records of the decision ledger (ledger.writer).

The ledger writer only buffers on the request path and writes files in the background, so
recording never delays or fails an answer. A challenger's decision on the same transactions is a
record of its own, with the request's id and arrival time, joined to the served one by
(request_id, position) (docs/LEDGER.md).
"""

from typing import Any, cast

import numpy as np

from ledger.schema import DECISION_RULE, Decision, Refusal, amounts_of
from ledger.writer import LedgerWriter
from serve_app.request_context import Request
from serve_app.schemas import ColumnarAnswer, FeatureRows


class DecisionLog:
    def __init__(self, writer: LedgerWriter) -> None:
        self.writer = writer
        self._features = writer.settings.record_features

    def decided(
        self,
        request: Request,
        answers: ColumnarAnswer,
        rows: FeatureRows | np.ndarray,
        *,
        role: str = "champion",
        served: bool = True,
        mode: str | None = None,
        latency_ms: float | None = None,
    ) -> None:
        """One model's decisions on the rows of `request`, in their order."""
        rule = cast(dict[str, Any], answers).get("decision_rule", DECISION_RULE)
        self.writer.append(
            Decision(
                request_id=request.request_id,
                route=request.route,
                received_at=request.received_at,
                model_version=answers["model_version"],
                threshold=answers["threshold"],
                scores=answers["fraud_probability"],
                decisions=answers["is_fraud"],
                amounts=amounts_of(rows),
                role="challenger" if role == "challenger" else "champion",
                served=served,
                mode=mode,
                key_id=request.caller.key_id,
                latency_ms=latency_ms,
                features=rows if self._features else None,
                decision_rule=str(rule),
            )
        )

    def refused(
        self,
        route: str,
        received_at: float,
        status: int,
        reason: str,
        request_id: str | None,
        key_id: str | None,
    ) -> None:
        self.writer.append(
            Refusal(
                route=route,
                received_at=received_at,
                status=status,
                reason=reason,
                request_id=request_id,
                key_id=key_id,
            )
        )
