"""The ledger's knobs and their defaults, in one place (docs/LEDGER.md explains each)."""

from pydantic import BaseModel, ConfigDict, Field


class LedgerSettings(BaseModel):
    """Where the ledger is and how a writer buffers and writes it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    location: str = Field(
        "ledger-data",
        description="A local directory (relative to the working directory) or s3://bucket/prefix.",
    )
    flush_interval_s: float = Field(
        5.0, gt=0, description="A file is written at least this often while records wait."
    )
    max_records_per_file: int = Field(
        50_000, ge=1, description="A file is written as soon as this many records wait."
    )
    buffer_records: int = Field(
        1_000_000,
        ge=1,
        description="Records held while the store cannot be written (buffered and in files not "
        "yet written); past it the oldest are dropped and counted.",
    )
    put_timeout_s: float = Field(
        5.0, gt=0, description="Bounds connecting to the store and each read of its answer."
    )
    put_attempts: int = Field(2, ge=1, description="Tries of one put before the next flush.")
    close_timeout_s: float = Field(
        10.0,
        gt=0,
        description="How long close() may take to write what is buffered: below Serve's "
        "graceful_shutdown_timeout_s (20 s), within which a stopped replica must end.",
    )
    outcome_lookback_days: int = Field(
        180,
        ge=1,
        description="How far before an outcome's reported_at its decision is looked for (the "
        "decisions partitions scanned to find unknown request ids).",
    )
    record_features: bool = Field(
        False, description="Keep each transaction's raw features (V1..V28, Amount) in the ledger."
    )
