"""Validation of raw records with the speed layer's own pass: the same contracts, the same reasons.

`lambdapipe.speed.records.classify_batch` decides every verdict in both layers. The batch layer
gives it each record's Kafka timestamp as the clock (a `future_timestamp` is judged against the
moment the record arrived, deterministic on every re-run) and no lateness (history is complete).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator
from typing import Final

import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import BooleanType, DateType, StructField, StructType, TimestampType

from lambdapipe.contracts.validate import DEFAULT_LIMITS, Limits
from lambdapipe.speed.records import classified_schema, classify_batch

# Columns of the window's rows that travel beside the verdict.
PASSED_THROUGH: Final = (
    StructField("kafka_timestamp", TimestampType()),
    StructField("record_day", DateType()),
    StructField("in_day", BooleanType()),
    # the lake's parse of the event time (also of records the validator rejects)
    StructField("raw_event_time", TimestampType()),
)
_VALIDATED: Final = ("key", "value", "topic", "partition", "offset", "batch_time")


@functools.cache
def batch_classified_schema() -> StructType:
    """`classified_schema()` plus the columns of `PASSED_THROUGH`."""
    return StructType([*classified_schema().fields, *PASSED_THROUGH])


def classify_raw(
    rows: DataFrame,
    *,
    events_topic: str,
    transactions_topic: str,
    limits: Limits = DEFAULT_LIMITS,
) -> DataFrame:
    """Window rows (`records_in_window`) -> `batch_classified_schema()`: one verdict per record."""
    extra = [f.name for f in PASSED_THROUGH]

    def classify(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            verdicts = classify_batch(
                batch.select(list(_VALIDATED)),
                events_topic=events_topic,
                transactions_topic=transactions_topic,
                limits=limits,
            )
            columns = [*verdicts.columns, *(batch.column(name) for name in extra)]
            yield pa.RecordBatch.from_arrays(columns, schema=_schema())

    prepared = rows.select(
        *(F.col(c) for c in ("key", "value", "topic", "partition", "offset")),
        F.col("kafka_timestamp").alias("batch_time"),
        *[F.col(name) for name in extra if name != "raw_event_time"],
        F.col("event_time").alias("raw_event_time"),
    )
    return prepared.mapInArrow(classify, batch_classified_schema())


@functools.cache
def _schema() -> pa.Schema:
    from pyspark.sql.pandas.types import to_arrow_schema

    return to_arrow_schema(batch_classified_schema())
