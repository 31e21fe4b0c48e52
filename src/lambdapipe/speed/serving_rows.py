"""Accepted records as rows of the realtime tables, with the columns the store declares."""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from lambdapipe.contracts.clickhouse import enriched_columns
from lambdapipe.contracts.spark import money_column, timestamp_column


def _column(struct: str, name: str, kind: str) -> Column:
    col = F.col(f"{struct}.{name}")
    if "Decimal" in kind:
        return money_column(col).alias(name)
    if "DateTime64" in kind:
        return timestamp_column(col).alias(name)
    return col.alias(name)


def _rows(records: DataFrame, struct: str, entity: str) -> DataFrame:
    columns = [_column(struct, name, kind) for name, kind in enriched_columns(entity)]
    return records.select(*columns[:-1], F.col("event_time"))


def event_rows(records: DataFrame) -> DataFrame:
    """`user_events_realtime` columns (without `user_tier`) from accepted `events` records."""
    return _rows(records, "event", "user_event")


def transaction_rows(records: DataFrame) -> DataFrame:
    """`transactions_realtime` columns (without `user_tier`) from accepted transactions."""
    return _rows(records, "transaction", "transaction")
