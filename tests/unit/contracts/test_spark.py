"""The Spark validator gives every record the same reason as the Python validator."""

import gc
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from itertools import groupby

import orjson
import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import BinaryType, IntegerType, StringType, StructField, StructType

from lambdapipe.contracts import Limits, validate_event, validate_transaction
from lambdapipe.contracts.spark import (
    event_validation,
    money_column,
    spark_schema,
    timestamp_column,
    transaction_validation,
)

from .corpus import CASES, EVENT_EXAMPLES, NOW, Case, example, with_

pytestmark = [
    pytest.mark.slow,
    # PySpark leaves its local result sockets for the garbage collector to close.
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]


@pytest.fixture(autouse=True)
def _collect_leaked_sockets() -> Iterator[None]:
    """Close PySpark's leaked sockets inside this module, where their warnings are ignored."""
    yield
    gc.collect()


VALID_EVENTS = [
    Case(f"valid {name}", orjson.dumps(event), None)  # type: ignore[arg-type]
    for name, event in EVENT_EXAMPLES.items()
] + [
    Case("valid null referrer", with_("page_view", referrer=None), None),  # type: ignore[arg-type]
    Case("valid Feb 29", with_("login", timestamp="2024-02-29T10:00:00.000Z"), None),  # type: ignore[arg-type]
    Case("valid at skew", with_("login", timestamp="2026-11-26T12:05:00.000Z"), None),  # type: ignore[arg-type]
    Case("valid transaction", orjson.dumps(example("transaction")), None, kind="transaction"),  # type: ignore[arg-type]
]

INPUT = StructType([StructField("id", IntegerType()), StructField("value", BinaryType())])


def _python_verdict(case: Case) -> tuple[str | None, str | None]:
    validate = validate_transaction if case.kind == "transaction" else validate_event
    result = validate(case.raw, NOW, limits=case.limits)
    return (None if result.reason is None else str(result.reason)), result.detail


def _spark_verdicts(
    spark: SparkSession, cases: list[Case], kind: str, limits: Limits
) -> list[tuple[str | None, str | None]]:
    frame = spark.createDataFrame([(i, c.raw) for i, c in enumerate(cases)], INPUT)
    validation = transaction_validation if kind == "transaction" else event_validation
    rows = (
        frame.select("id", validation(frame["value"], now=NOW, limits=limits).alias("v"))
        .orderBy("id")
        .collect()
    )
    return [(None, None) if r.v is None else (r.v.reason, r.v.detail) for r in rows]


def test_spark_and_python_agree_on_every_case(spark: SparkSession) -> None:
    cases = [c for c in CASES + VALID_EVENTS if c.spark_differs is None]
    mismatches = []
    key = lambda c: (c.kind, c.limits.max_bytes)  # noqa: E731
    for (kind, _), group in groupby(sorted(cases, key=key), key=key):
        batch = list(group)
        for case, spark_verdict in zip(
            batch, _spark_verdicts(spark, batch, kind, batch[0].limits), strict=True
        ):
            python_verdict = _python_verdict(case)
            if spark_verdict != python_verdict:
                mismatches.append((case.name, python_verdict, spark_verdict))
    assert mismatches == []


def test_documented_differences_still_differ(spark: SparkSession) -> None:
    """If Spark starts agreeing, the documented difference is stale."""
    cases = [c for c in CASES if c.spark_differs is not None and c.kind == "event"]
    verdicts = _spark_verdicts(spark, cases, "event", Limits())
    for case, (reason, _) in zip(cases, verdicts, strict=True):
        assert reason != str(case.reason), case.name


def test_string_values_work_like_binary(spark: SparkSession) -> None:
    frame = spark.createDataFrame(
        [(with_("purchase", amount="0.00").decode(),)],
        StructType([StructField("value", StringType())]),
    )
    row = frame.select(event_validation(frame["value"], now=NOW).alias("v")).first()
    assert row is not None
    assert (row.v.reason, row.v.detail) == ("business_rule", "purchase.amount_positive")


def test_wire_schema_parses_an_event_and_casts_money_and_time(spark: SparkSession) -> None:
    frame = spark.createDataFrame([(with_("purchase").decode(),)], "value string")
    parsed = frame.select(F.from_json("value", spark_schema()).alias("e")).select("e.*")
    row = parsed.select(
        money_column(F.col("amount")).alias("amount"),
        timestamp_column(F.col("timestamp")).alias("timestamp"),
        "quantity",
    ).first()
    assert row is not None
    assert row.amount == Decimal("117.58")
    assert row.timestamp == datetime(2026, 11, 26, 10, 0, 0, 123_000)
    assert row.quantity == 2
