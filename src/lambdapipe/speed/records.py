"""Parse and validate raw Kafka records of `events` and `transactions`; decide lateness.

Every record gets a verdict: null (accepted), a contracts `Reason`, or `late`. Lateness is
decided without state, against the micro-batch time (`current_timestamp()` is fixed per batch
and recorded in the offset log, so a replayed batch decides identically): an event is late when
its event time is older than the batch time minus `lateness`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Final

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from lambdapipe.contracts.spark import TIMESTAMP_FORMAT, spark_schema
from lambdapipe.contracts.validate import DEFAULT_LIMITS, Limits
from lambdapipe.speed.validate import validation

# The speed layer's own reason, beside the contracts taxonomy: valid, but too old to stream.
LATE: Final = "late"
EVENT_KEY_PREFIX: Final = "e:"
TRANSACTION_KEY_PREFIX: Final = "t:"


def _seconds(seconds: float) -> Column:
    return F.expr(f"make_dt_interval(0, 0, 0, {float(seconds)})")


def classify_records(
    raw: DataFrame,
    *,
    events_topic: str,
    transactions_topic: str,
    lateness: timedelta,
    limits: Limits = DEFAULT_LIMITS,
) -> DataFrame:
    """Kafka rows (key, value, topic, partition, offset, ...) with their verdict.

    Adds `event` / `transaction` (parsed structs, null on the other topic), `event_time`,
    `batch_time`, `reason` and `detail` (null when accepted), `accepted`, and `dedup_key`:
    `e:<event_id>` / `t:<transaction_id>` for accepted records, `<topic>/<partition>/<offset>`
    (unique, so never deduplicated) for the rest.
    """
    is_event = F.col("topic") == events_topic
    is_transaction = F.col("topic") == transactions_topic
    text = F.col("value").cast("string")
    verdict = validation(
        F.col("value"),
        F.col("topic"),
        F.col("batch_time"),
        events_topic=events_topic,
        transactions_topic=transactions_topic,
        max_future_skew=limits.max_future_skew,
    )
    event = F.when(is_event, F.from_json(text, spark_schema("user_event")))
    transaction = F.when(is_transaction, F.from_json(text, spark_schema("transaction")))
    with_verdict = raw.withColumn("batch_time", F.current_timestamp()).select(
        "*",
        verdict.alias("verdict"),
        event.alias("event"),
        transaction.alias("transaction"),
    )
    # try_: rejected records (bad_timestamp) must not fail the batch; accepted ones always parse
    event_time = F.try_to_timestamp(
        F.coalesce(F.col("event.timestamp"), F.col("transaction.timestamp")),
        F.lit(TIMESTAMP_FORMAT),
    )
    valid = F.col("verdict.reason").isNull()
    late = valid & (F.col("event_time") < F.col("batch_time") - _seconds(lateness.total_seconds()))
    coordinates = F.concat_ws("/", "topic", F.col("partition").cast("string"), "offset")
    return (
        with_verdict.withColumn("event_time", event_time)
        .withColumn("reason", F.when(late, F.lit(LATE)).otherwise(F.col("verdict.reason")))
        .withColumn(
            "detail",
            F.when(
                late,
                F.concat(F.lit("event time older than "), F.lit(f"{lateness.total_seconds():g}s")),
            ).otherwise(F.col("verdict.detail")),
        )
        .withColumn("accepted", F.col("reason").isNull())
        .withColumn(
            "dedup_key",
            F.when(
                F.col("accepted") & is_event,
                F.concat(F.lit(EVENT_KEY_PREFIX), F.col("event.event_id")),
            )
            .when(
                F.col("accepted") & is_transaction,
                F.concat(F.lit(TRANSACTION_KEY_PREFIX), F.col("transaction.transaction_id")),
            )
            .otherwise(coordinates),
        )
        .drop("verdict")
    )
