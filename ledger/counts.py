"""The realized-performance report's counts: additive, so that any split of the decisions (one
query over every file, or one Ray task per day) adds up to the same integers.

`labels` turns the outcomes into one label per transaction; `partial_counts` counts a set of
decision files joined with those labels, per model version and week (`versions`) and per
champion/challenger pair and week (`pairs`); `merge` adds partial counts up. Amounts are summed
in integer cents, so that sums do not depend on their order either. DuckDB computes; it is
imported only when a report runs.
"""

from typing import TYPE_CHECKING, Any

import pyarrow as pa

if TYPE_CHECKING:
    import duckdb

# A transaction's label: fraud if a chargeback confirmed it; else the latest review's verdict;
# else none (a transaction nobody reported on counts as legitimate once its week is mature).
LABELS_SQL = """
SELECT request_id, position,
       coalesce(bool_or(source = 'chargeback' AND is_fraud), false) AS chargeback_fraud,
       arg_max(is_fraud, reported_at) FILTER (WHERE source = 'review') AS review_verdict
FROM outcomes
GROUP BY request_id, position
"""

# One record per (day, request id, position, role): a request recorded twice (a retry with the
# same request id) counts once. A request's records all carry its arrival time, so they share
# a day and a week.
_DECISIONS_SQL = """
WITH decisions AS (
    SELECT request_id, position, role, served, model_version, is_fraud,
           CAST(round(amount * 100) AS BIGINT) AS cents,
           CAST(date_trunc('week', time) AS DATE) AS week
    FROM decision_rows
    QUALIFY row_number() OVER (
        PARTITION BY date, request_id, position, role ORDER BY time, model_version) = 1
),
labelled AS (
    SELECT d.*, coalesce(l.chargeback_fraud OR l.review_verdict, false) AS fraud,
           l.review_verdict, coalesce(l.chargeback_fraud, false) AS chargeback_fraud
    FROM decisions d LEFT JOIN labels l USING (request_id, position)
)
"""

VERSIONS_SQL = (
    _DECISIONS_SQL
    + """
SELECT model_version, week,
       count(*) AS transactions,
       count(*) FILTER (WHERE is_fraud) AS alerts,
       count(*) FILTER (WHERE is_fraud AND review_verdict IS NOT NULL) AS reviewed_alerts,
       count(*) FILTER (WHERE is_fraud AND review_verdict) AS confirmed_alerts,
       count(*) FILTER (WHERE chargeback_fraud) AS chargebacks,
       count(*) FILTER (WHERE fraud) AS frauds,
       count(*) FILTER (WHERE fraud AND is_fraud) AS frauds_flagged,
       CAST(sum(cents) AS BIGINT) AS amount_cents,
       CAST(coalesce(sum(cents) FILTER (WHERE fraud), 0) AS BIGINT) AS fraud_cents,
       CAST(coalesce(sum(cents) FILTER (WHERE fraud AND is_fraud), 0) AS BIGINT) AS caught_cents
FROM labelled WHERE served
GROUP BY model_version, week
"""
)

PAIRS_SQL = (
    _DECISIONS_SQL
    + """
, paired AS (
    SELECT c.model_version AS champion_version, h.model_version AS challenger_version, c.week,
           c.is_fraud AS champion_flags, h.is_fraud AS challenger_flags, c.fraud, c.cents
    FROM labelled c JOIN labelled h USING (request_id, position, week)
    WHERE c.role = 'champion' AND h.role = 'challenger'
)
SELECT champion_version, challenger_version, week,
       count(*) AS transactions,
       count(*) FILTER (WHERE champion_flags) AS champion_alerts,
       count(*) FILTER (WHERE challenger_flags) AS challenger_alerts,
       count(*) FILTER (WHERE champion_flags AND challenger_flags) AS both_flag,
       count(*) FILTER (WHERE fraud) AS frauds,
       count(*) FILTER (WHERE fraud AND champion_flags) AS champion_caught,
       count(*) FILTER (WHERE fraud AND challenger_flags) AS challenger_caught,
       count(*) FILTER (WHERE fraud AND champion_flags AND NOT challenger_flags)
           AS only_champion_caught,
       count(*) FILTER (WHERE fraud AND challenger_flags AND NOT champion_flags)
           AS only_challenger_caught,
       CAST(coalesce(sum(cents) FILTER (WHERE fraud), 0) AS BIGINT) AS fraud_cents,
       CAST(coalesce(sum(cents) FILTER (WHERE fraud AND champion_flags), 0) AS BIGINT)
           AS champion_caught_cents,
       CAST(coalesce(sum(cents) FILTER (WHERE fraud AND challenger_flags), 0) AS BIGINT)
           AS challenger_caught_cents
FROM paired
GROUP BY champion_version, challenger_version, week
"""
)

VERSION_KEYS = ("model_version", "week")
PAIR_KEYS = ("champion_version", "challenger_version", "week")


def connect() -> "duckdb.DuckDBPyConnection":
    import duckdb

    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")  # weeks start on Monday 00:00 UTC
    return connection


def labels(outcomes: Any) -> pa.Table:
    """One label row per (request_id, position) from the outcomes (an Arrow table or dataset)."""
    connection = connect()
    connection.register("outcomes", outcomes)
    table: pa.Table = connection.sql(LABELS_SQL).to_arrow_table()
    return table


def partial_counts(decisions: Any, label_table: pa.Table) -> tuple[pa.Table, pa.Table]:
    """(versions, pairs) counts of `decisions` (an Arrow table or dataset) joined with labels."""
    connection = connect()
    connection.register("decision_rows", decisions)
    connection.register("labels", label_table)
    versions: pa.Table = connection.sql(VERSIONS_SQL).to_arrow_table()
    pairs: pa.Table = connection.sql(PAIRS_SQL).to_arrow_table()
    return versions, pairs


def merge(parts: list[pa.Table], keys: tuple[str, ...]) -> pa.Table:
    """Partial counts added up per key (every other column is a count or a sum)."""
    filled = [part for part in parts if part.num_rows]
    if not filled:
        return parts[0] if parts else pa.table({})
    combined = pa.concat_tables(filled)
    values = [name for name in combined.column_names if name not in keys]
    summed = combined.group_by(list(keys)).aggregate([(name, "sum") for name in values])
    renamed = summed.rename_columns([name.removesuffix("_sum") for name in summed.column_names])
    return renamed.sort_by([(key, "ascending") for key in keys])
