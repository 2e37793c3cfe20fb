import numpy as np

from fraud_model.features import FEATURE_NAMES, feature_matrix


def test_contract_is_v1_to_v28_then_amount() -> None:
    expected = [*(f"V{i}" for i in range(1, 29)), "Amount"]
    assert list(FEATURE_NAMES) == expected
    assert "Time" not in FEATURE_NAMES


def test_feature_matrix_orders_columns_by_contract_not_by_dict_order() -> None:
    row = {name: float(i) for i, name in enumerate(FEATURE_NAMES)}
    shuffled = dict(reversed(list(row.items())))
    matrix = feature_matrix([shuffled, row])
    assert matrix.shape == (2, 29)
    np.testing.assert_array_equal(matrix[0], np.arange(29, dtype=np.float32))
    np.testing.assert_array_equal(matrix[0], matrix[1])
