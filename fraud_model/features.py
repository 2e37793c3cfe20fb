"""The model's input contract: which columns, in which order."""

import numpy as np

# `Time` is in creditcard.csv but is not a model input: it is seconds since the first
# transaction of a two-day capture, which means nothing for a live payment.
FEATURE_NAMES: tuple[str, ...] = (*(f"V{i}" for i in range(1, 29)), "Amount")
TARGET_COLUMN = "Class"

# Trees compare float32 thresholds (sklearn casts inputs to float32), so float32 loses nothing.
FEATURE_DTYPE = np.float32
