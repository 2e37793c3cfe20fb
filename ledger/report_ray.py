"""The realized-performance report's counting as Ray tasks, for a ledger larger than a machine.

One task per day of decisions reads that day's files (from S3 on a cluster) and counts them,
joined with the labels (computed once from the outcomes on the driver and shared through the
object store); the driver adds the partial counts up (ledger.counts.merge). The counts are
integers, so the report is the same as `python -m ledger.report` without `--ray`.
"""

import pyarrow as pa

from ledger.counts import PAIR_KEYS, VERSION_KEYS, merge, partial_counts
from ledger.files import open_files, table_dataset, table_files
from ledger.report import read_labels
from ledger.schema import DECISIONS


def count_day(ledger: str, paths: list[str], label_table: pa.Table) -> tuple[pa.Table, pa.Table]:
    """(versions, pairs) counts of one day's decision files."""
    return partial_counts(table_dataset(open_files(ledger), DECISIONS, paths), label_table)


def count_with_ray(ledger: str, env: dict[str, str] | None = None) -> tuple[pa.Table, pa.Table]:
    """(versions, pairs) counts of the whole ledger, one Ray task per day (in the Ray cluster
    this process is connected to, or a local one Ray starts). `env`: environment variables for
    the tasks (an S3 endpoint, say), where the cluster's workers do not have them already."""
    import ray

    files = open_files(ledger)
    label_ref = ray.put(read_labels(files))
    task = ray.remote(count_day).options(runtime_env={"env_vars": env} if env else None)
    parts = ray.get([
        task.remote(ledger, paths, label_ref) for paths in table_files(files, DECISIONS).values()
    ])  # fmt: skip
    return (
        merge([versions for versions, _ in parts], VERSION_KEYS),
        merge([pairs for _, pairs in parts], PAIR_KEYS),
    )
