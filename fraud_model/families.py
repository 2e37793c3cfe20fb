"""The model families an artifact can hold. Light on purpose (typing only): the training CLI's
`--help` and the metadata schema both read it."""

from typing import Literal, get_args

# random_forest: the forest's raw score is its mean over trees of P(fraud);
# hist_gradient_boosting: scikit-learn's HistGradientBoostingClassifier, whose raw score is the
# log-odds of fraud (baseline + the trees' leaf values).
ModelFamily = Literal["random_forest", "hist_gradient_boosting"]
MODEL_FAMILIES: tuple[ModelFamily, ...] = get_args(ModelFamily)
