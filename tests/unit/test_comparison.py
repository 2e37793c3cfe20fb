"""Champion against challenger, row by row: exact decision counts and score-difference buckets on
crafted answers (no Ray)."""

import pytest

from serve_app.comparison import (
    DECISIONS,
    DIFFERENCE_LABELS,
    LATENCY_LABELS,
    ChallengerTotals,
    bucket_index,
    compare,
    cumulative,
    cumulative_counts,
)


def answers(scores: list[float], threshold: float, version: str) -> list[dict]:
    return [
        {
            "fraud_probability": score,
            "is_fraud": score >= threshold,
            "threshold": threshold,
            "model_version": version,
        }
        for score in scores
    ]


# Champion threshold 0.5, challenger threshold 0.3: each row's pair of decisions is known.
CHAMPION = answers([0.9, 0.6, 0.4, 0.1, 0.35, 0.0001, 0.7, 0.2], 0.5, "champ")
CHALLENGER = answers([0.75, 0.2, 0.43, 0.1, 0.365, 0.00015, 0.7, 0.33], 0.3, "chall")
# rows:             both  champ chall pass  chall  pass   both  chall


def test_decisions_are_counted_exactly_by_each_model_s_own_threshold() -> None:
    (comparison,) = compare(CHAMPION, CHALLENGER)
    assert comparison.champion_version == "champ"
    assert comparison.challenger_version == "chall"
    assert comparison.transactions == 8
    assert comparison.decisions == {
        "both_flag": 2,  # rows 0 and 6
        "both_pass": 2,  # rows 3 and 5
        "only_champion_flags": 1,  # row 1
        "only_challenger_flags": 3,  # rows 2, 4 (0.35 is under 0.5, 0.36 over 0.3) and 7
    }
    assert sum(comparison.decisions.values()) == comparison.transactions


def test_score_differences_fall_in_cumulative_buckets() -> None:
    (comparison,) = compare(CHAMPION, CHALLENGER)
    # challenger - champion: -0.15, -0.4, 0.03, 0, 0.015, 0.00005, 0, 0.13
    buckets = dict(comparison.difference_buckets)
    assert list(buckets) == [*DIFFERENCE_LABELS, "+Inf"]
    assert buckets["-0.5"] == 0
    assert buckets["-0.2"] == 1  # -0.4
    assert buckets["-0.1"] == buckets["-0.0001"] == 2  # and -0.15
    assert buckets["0"] == 4  # and the two equal scores
    assert buckets["0.0001"] == buckets["0.01"] == 5  # 0.00015 - 0.0001
    assert buckets["0.02"] == 6
    assert buckets["0.05"] == buckets["0.1"] == 7
    assert buckets["0.2"] == buckets["+Inf"] == 8
    counts = list(buckets.values())
    assert counts == sorted(counts)  # cumulative
    assert comparison.max_abs_difference == pytest.approx(0.4)
    assert comparison.difference_sum == pytest.approx(-0.37495)
    assert comparison.abs_difference_sum == pytest.approx(0.72505)


def test_identical_models_agree_on_everything() -> None:
    (comparison,) = compare(CHAMPION, CHAMPION)
    assert comparison.decisions["only_champion_flags"] == 0
    assert comparison.decisions["only_challenger_flags"] == 0
    assert comparison.max_abs_difference == 0
    buckets = dict(comparison.difference_buckets)
    assert buckets["-0.0001"] == 0 and buckets["0"] == 8


def test_rows_of_another_version_pair_are_compared_apart() -> None:
    # A model swapped in mid-call would name another version: never add its rows to the first.
    challenger = CHALLENGER[:5] + answers([0.00015, 0.7, 0.33], 0.3, "chall-2")
    by_pair = {(c.champion_version, c.challenger_version): c for c in compare(CHAMPION, challenger)}
    assert by_pair[("champ", "chall")].transactions == 5
    assert by_pair[("champ", "chall-2")].transactions == 3
    assert by_pair[("champ", "chall-2")].decisions == {
        "both_flag": 1,
        "both_pass": 1,
        "only_champion_flags": 0,
        "only_challenger_flags": 1,
    }


def test_answers_of_different_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="answered 7 rows for the champion's 8"):
        compare(CHAMPION, CHALLENGER[:7])


def test_totals_add_up_per_version_pair_and_summarise() -> None:
    totals = ChallengerTotals()
    totals.compared(compare(CHAMPION, CHALLENGER))
    totals.compared(compare(CHAMPION[:2], CHALLENGER[:2]))
    totals.answered("chall", 3.0)
    totals.answered("chall", 700.0)
    summary = totals.summary()
    (pair,) = summary["comparisons"]
    assert pair["champion_version"] == "champ" and pair["challenger_version"] == "chall"
    assert pair["requests"] == 2 and pair["transactions"] == 10
    assert pair["decisions"] == {
        "both_flag": 3,
        "both_pass": 2,
        "only_champion_flags": 2,
        "only_challenger_flags": 3,
    }
    assert list(pair["decisions"]) == list(DECISIONS)
    assert pair["agreement"] == pytest.approx(5 / 10)
    assert pair["score_difference"]["buckets"]["+Inf"] == 10
    assert pair["score_difference"]["max_abs"] == pytest.approx(0.4)
    assert pair["score_difference"]["mean"] == pytest.approx((-0.37495 - 0.15 - 0.4) / 10)
    (latency,) = summary["latency"]
    assert latency["challenger_version"] == "chall" and latency["calls"] == 2
    assert latency["mean_ms"] == pytest.approx(351.5) and latency["max_ms"] == 700.0
    assert latency["buckets"]["2"] == 0 and latency["buckets"]["5"] == 1
    assert latency["buckets"]["500"] == 1 and latency["buckets"]["1000"] == 2
    assert list(latency["buckets"]) == [*LATENCY_LABELS, "+Inf"]


def test_a_value_counts_in_the_first_bucket_whose_bound_it_does_not_exceed() -> None:
    bounds = [1.0, 10.0, 100.0]
    assert bucket_index(0.5, bounds) == 0
    assert bucket_index(10.0, bounds) == 1  # le: a bound is in its own bucket
    assert bucket_index(10.5, bounds) == 2
    assert bucket_index(1e9, bounds) == 3  # +Inf only
    assert cumulative([1, 0, 2, 1], ["1", "10", "100"]) == [
        ("1", 1),
        ("10", 1),
        ("100", 3),
        ("+Inf", 4),
    ]


def test_cumulative_counts_keep_empty_buckets() -> None:
    assert cumulative_counts([0.5], [0.1, 1.0], ["0.1", "1"]) == [("0.1", 0), ("1", 1), ("+Inf", 1)]
    assert cumulative_counts([], [0.1], ["0.1"]) == [("0.1", 0), ("+Inf", 0)]
