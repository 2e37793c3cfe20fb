from fraud_model.features import FEATURE_NAMES


def test_contract_is_v1_to_v28_then_amount() -> None:
    expected = [*(f"V{i}" for i in range(1, 29)), "Amount"]
    assert list(FEATURE_NAMES) == expected
    assert "Time" not in FEATURE_NAMES
