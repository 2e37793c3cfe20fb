from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class Transaction(_message.Message):
    __slots__ = ("V1", "V2", "V3", "V4", "V5", "V6", "V7", "V8", "V9", "V10", "V11", "V12", "V13", "V14", "V15", "V16", "V17", "V18", "V19", "V20", "V21", "V22", "V23", "V24", "V25", "V26", "V27", "V28", "Amount")
    V1_FIELD_NUMBER: _ClassVar[int]
    V2_FIELD_NUMBER: _ClassVar[int]
    V3_FIELD_NUMBER: _ClassVar[int]
    V4_FIELD_NUMBER: _ClassVar[int]
    V5_FIELD_NUMBER: _ClassVar[int]
    V6_FIELD_NUMBER: _ClassVar[int]
    V7_FIELD_NUMBER: _ClassVar[int]
    V8_FIELD_NUMBER: _ClassVar[int]
    V9_FIELD_NUMBER: _ClassVar[int]
    V10_FIELD_NUMBER: _ClassVar[int]
    V11_FIELD_NUMBER: _ClassVar[int]
    V12_FIELD_NUMBER: _ClassVar[int]
    V13_FIELD_NUMBER: _ClassVar[int]
    V14_FIELD_NUMBER: _ClassVar[int]
    V15_FIELD_NUMBER: _ClassVar[int]
    V16_FIELD_NUMBER: _ClassVar[int]
    V17_FIELD_NUMBER: _ClassVar[int]
    V18_FIELD_NUMBER: _ClassVar[int]
    V19_FIELD_NUMBER: _ClassVar[int]
    V20_FIELD_NUMBER: _ClassVar[int]
    V21_FIELD_NUMBER: _ClassVar[int]
    V22_FIELD_NUMBER: _ClassVar[int]
    V23_FIELD_NUMBER: _ClassVar[int]
    V24_FIELD_NUMBER: _ClassVar[int]
    V25_FIELD_NUMBER: _ClassVar[int]
    V26_FIELD_NUMBER: _ClassVar[int]
    V27_FIELD_NUMBER: _ClassVar[int]
    V28_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    V1: float
    V2: float
    V3: float
    V4: float
    V5: float
    V6: float
    V7: float
    V8: float
    V9: float
    V10: float
    V11: float
    V12: float
    V13: float
    V14: float
    V15: float
    V16: float
    V17: float
    V18: float
    V19: float
    V20: float
    V21: float
    V22: float
    V23: float
    V24: float
    V25: float
    V26: float
    V27: float
    V28: float
    Amount: float
    def __init__(self, V1: _Optional[float] = ..., V2: _Optional[float] = ..., V3: _Optional[float] = ..., V4: _Optional[float] = ..., V5: _Optional[float] = ..., V6: _Optional[float] = ..., V7: _Optional[float] = ..., V8: _Optional[float] = ..., V9: _Optional[float] = ..., V10: _Optional[float] = ..., V11: _Optional[float] = ..., V12: _Optional[float] = ..., V13: _Optional[float] = ..., V14: _Optional[float] = ..., V15: _Optional[float] = ..., V16: _Optional[float] = ..., V17: _Optional[float] = ..., V18: _Optional[float] = ..., V19: _Optional[float] = ..., V20: _Optional[float] = ..., V21: _Optional[float] = ..., V22: _Optional[float] = ..., V23: _Optional[float] = ..., V24: _Optional[float] = ..., V25: _Optional[float] = ..., V26: _Optional[float] = ..., V27: _Optional[float] = ..., V28: _Optional[float] = ..., Amount: _Optional[float] = ...) -> None: ...

class Prediction(_message.Message):
    __slots__ = ("fraud_probability", "is_fraud", "threshold", "model_version", "decision_rule")
    FRAUD_PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    IS_FRAUD_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    DECISION_RULE_FIELD_NUMBER: _ClassVar[int]
    fraud_probability: float
    is_fraud: bool
    threshold: float
    model_version: str
    decision_rule: str
    def __init__(self, fraud_probability: _Optional[float] = ..., is_fraud: _Optional[bool] = ..., threshold: _Optional[float] = ..., model_version: _Optional[str] = ..., decision_rule: _Optional[str] = ...) -> None: ...

class TransactionColumns(_message.Message):
    __slots__ = ("V1", "V2", "V3", "V4", "V5", "V6", "V7", "V8", "V9", "V10", "V11", "V12", "V13", "V14", "V15", "V16", "V17", "V18", "V19", "V20", "V21", "V22", "V23", "V24", "V25", "V26", "V27", "V28", "Amount")
    V1_FIELD_NUMBER: _ClassVar[int]
    V2_FIELD_NUMBER: _ClassVar[int]
    V3_FIELD_NUMBER: _ClassVar[int]
    V4_FIELD_NUMBER: _ClassVar[int]
    V5_FIELD_NUMBER: _ClassVar[int]
    V6_FIELD_NUMBER: _ClassVar[int]
    V7_FIELD_NUMBER: _ClassVar[int]
    V8_FIELD_NUMBER: _ClassVar[int]
    V9_FIELD_NUMBER: _ClassVar[int]
    V10_FIELD_NUMBER: _ClassVar[int]
    V11_FIELD_NUMBER: _ClassVar[int]
    V12_FIELD_NUMBER: _ClassVar[int]
    V13_FIELD_NUMBER: _ClassVar[int]
    V14_FIELD_NUMBER: _ClassVar[int]
    V15_FIELD_NUMBER: _ClassVar[int]
    V16_FIELD_NUMBER: _ClassVar[int]
    V17_FIELD_NUMBER: _ClassVar[int]
    V18_FIELD_NUMBER: _ClassVar[int]
    V19_FIELD_NUMBER: _ClassVar[int]
    V20_FIELD_NUMBER: _ClassVar[int]
    V21_FIELD_NUMBER: _ClassVar[int]
    V22_FIELD_NUMBER: _ClassVar[int]
    V23_FIELD_NUMBER: _ClassVar[int]
    V24_FIELD_NUMBER: _ClassVar[int]
    V25_FIELD_NUMBER: _ClassVar[int]
    V26_FIELD_NUMBER: _ClassVar[int]
    V27_FIELD_NUMBER: _ClassVar[int]
    V28_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    V1: _containers.RepeatedScalarFieldContainer[float]
    V2: _containers.RepeatedScalarFieldContainer[float]
    V3: _containers.RepeatedScalarFieldContainer[float]
    V4: _containers.RepeatedScalarFieldContainer[float]
    V5: _containers.RepeatedScalarFieldContainer[float]
    V6: _containers.RepeatedScalarFieldContainer[float]
    V7: _containers.RepeatedScalarFieldContainer[float]
    V8: _containers.RepeatedScalarFieldContainer[float]
    V9: _containers.RepeatedScalarFieldContainer[float]
    V10: _containers.RepeatedScalarFieldContainer[float]
    V11: _containers.RepeatedScalarFieldContainer[float]
    V12: _containers.RepeatedScalarFieldContainer[float]
    V13: _containers.RepeatedScalarFieldContainer[float]
    V14: _containers.RepeatedScalarFieldContainer[float]
    V15: _containers.RepeatedScalarFieldContainer[float]
    V16: _containers.RepeatedScalarFieldContainer[float]
    V17: _containers.RepeatedScalarFieldContainer[float]
    V18: _containers.RepeatedScalarFieldContainer[float]
    V19: _containers.RepeatedScalarFieldContainer[float]
    V20: _containers.RepeatedScalarFieldContainer[float]
    V21: _containers.RepeatedScalarFieldContainer[float]
    V22: _containers.RepeatedScalarFieldContainer[float]
    V23: _containers.RepeatedScalarFieldContainer[float]
    V24: _containers.RepeatedScalarFieldContainer[float]
    V25: _containers.RepeatedScalarFieldContainer[float]
    V26: _containers.RepeatedScalarFieldContainer[float]
    V27: _containers.RepeatedScalarFieldContainer[float]
    V28: _containers.RepeatedScalarFieldContainer[float]
    Amount: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, V1: _Optional[_Iterable[float]] = ..., V2: _Optional[_Iterable[float]] = ..., V3: _Optional[_Iterable[float]] = ..., V4: _Optional[_Iterable[float]] = ..., V5: _Optional[_Iterable[float]] = ..., V6: _Optional[_Iterable[float]] = ..., V7: _Optional[_Iterable[float]] = ..., V8: _Optional[_Iterable[float]] = ..., V9: _Optional[_Iterable[float]] = ..., V10: _Optional[_Iterable[float]] = ..., V11: _Optional[_Iterable[float]] = ..., V12: _Optional[_Iterable[float]] = ..., V13: _Optional[_Iterable[float]] = ..., V14: _Optional[_Iterable[float]] = ..., V15: _Optional[_Iterable[float]] = ..., V16: _Optional[_Iterable[float]] = ..., V17: _Optional[_Iterable[float]] = ..., V18: _Optional[_Iterable[float]] = ..., V19: _Optional[_Iterable[float]] = ..., V20: _Optional[_Iterable[float]] = ..., V21: _Optional[_Iterable[float]] = ..., V22: _Optional[_Iterable[float]] = ..., V23: _Optional[_Iterable[float]] = ..., V24: _Optional[_Iterable[float]] = ..., V25: _Optional[_Iterable[float]] = ..., V26: _Optional[_Iterable[float]] = ..., V27: _Optional[_Iterable[float]] = ..., V28: _Optional[_Iterable[float]] = ..., Amount: _Optional[_Iterable[float]] = ...) -> None: ...

class ColumnarPrediction(_message.Message):
    __slots__ = ("fraud_probability", "is_fraud", "threshold", "model_version", "decision_rule")
    FRAUD_PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    IS_FRAUD_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    DECISION_RULE_FIELD_NUMBER: _ClassVar[int]
    fraud_probability: _containers.RepeatedScalarFieldContainer[float]
    is_fraud: _containers.RepeatedScalarFieldContainer[bool]
    threshold: float
    model_version: str
    decision_rule: str
    def __init__(self, fraud_probability: _Optional[_Iterable[float]] = ..., is_fraud: _Optional[_Iterable[bool]] = ..., threshold: _Optional[float] = ..., model_version: _Optional[str] = ..., decision_rule: _Optional[str] = ...) -> None: ...
