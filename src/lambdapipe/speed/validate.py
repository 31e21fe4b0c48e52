"""Validation of raw records with the contracts' reference validator, a batch of rows at a time.

Measured on this machine (docs/speed.md, "Why validation is a vectorized Python UDF"): the
contracts' Spark validation Column (`event_validation`, hundreds of CASE branches) ran at
~140-360 records/s in local[2] with ~12 s of planning per micro-batch, while the Python validator
checks ~110K records/s per core. This pandas UDF hands Arrow batches of raw values to
`validate_event` / `validate_transaction`: the same taxonomy, the same code as every other
layer. `now` is the micro-batch time, so a replayed batch judges future timestamps identically.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pandas as pd  # type: ignore[import-untyped]
from pyspark.sql import Column
from pyspark.sql.functions import pandas_udf  # type: ignore[attr-defined]
from pyspark.sql.types import StringType, StructField, StructType

from lambdapipe.contracts import Limits, validate_event, validate_transaction

VERDICT = StructType([StructField("reason", StringType()), StructField("detail", StringType())])
UNKNOWN_TOPIC = "unknown_topic"


def verdicts(
    values: pd.Series,
    topics: pd.Series,
    now: pd.Series,
    events_topic: str,
    transactions_topic: str,
    max_future_skew_s: float,
) -> pd.DataFrame:
    """(reason, detail) per raw value, None when valid; pure Python, testable without Spark."""
    limits = Limits(max_future_skew=timedelta(seconds=max_future_skew_s))
    reasons: list[str | None] = []
    details: list[str | None] = []
    batch_now = None
    if len(now):
        # Spark hands timestamps over as naive values in the session time zone (UTC).
        moment = pd.Timestamp(now.iloc[0])
        batch_now = (moment.tz_localize("UTC") if moment.tzinfo is None else moment).to_pydatetime()
    for raw, topic in zip(values, topics, strict=True):
        data = bytes(raw) if raw is not None else b""
        if topic == events_topic:
            result = validate_event(data, batch_now, limits=limits)
        elif topic == transactions_topic:
            result = validate_transaction(data, batch_now, limits=limits)
        else:
            reasons.append(UNKNOWN_TOPIC)
            details.append(str(topic))
            continue
        reasons.append(None if result.ok else str(result.reason))
        details.append(result.detail if not result.ok else None)
    return pd.DataFrame({"reason": reasons, "detail": details})


def validation(
    value: Column,
    topic: Column,
    now: Column,
    *,
    events_topic: str,
    transactions_topic: str,
    max_future_skew: timedelta,
) -> Column:
    """A struct column (reason, detail), null fields when the record is valid."""
    skew = max_future_skew.total_seconds()

    def judge(values: pd.Series, topics: pd.Series, times: pd.Series) -> pd.DataFrame:
        return verdicts(values, topics, times, events_topic, transactions_topic, skew)

    udf: Any = pandas_udf(judge, VERDICT)
    result: Column = udf(value, topic, now)
    return result
