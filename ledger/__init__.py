"""The decision ledger: every decision, refusal and outcome as write-once Parquet files in object
storage (a local directory by default, `s3://bucket/prefix` in production).

Serving imports `ledger.writer`, `ledger.schema` and `ledger.outcomes` only; the report modules
(`ledger.report`, `ledger.report_ray`, `ledger.plots`) bring DuckDB and matplotlib and are never
imported on the serving path. docs/LEDGER.md has the record schema and the guarantees.
"""
