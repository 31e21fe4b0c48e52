"""The raw-record transform: bytes untouched, the day of arrival, event time where it parses."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
from pyspark.sql import functions as F
from pyspark.sql.types import (
    ArrayType,
    BinaryType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from lambdapipe.generator.run import plan, run
from lambdapipe.generator.sinks import transactions_path
from lambdapipe.lake.archive import exact_topic, raw_records
from lambdapipe.lake.tables import RAW_COLUMNS, create_table_sql, raw_tables
from lambdapipe.settings import Settings

KAFKA = StructType(
    [
        StructField("key", BinaryType()),
        StructField("value", BinaryType()),
        StructField("topic", StringType()),
        StructField("partition", IntegerType()),
        StructField("offset", LongType()),
        StructField("timestamp", TimestampType()),
        StructField("timestampType", IntegerType()),
        StructField(
            "headers",
            ArrayType(
                StructType([StructField("key", StringType()), StructField("value", BinaryType())])
            ),
        ),
    ]
)
# PySpark's py4j sockets are closed by the JVM side; Python reports them as unclosed.
pytestmark = [
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]
ARRIVED = datetime(2026, 3, 1, 23, 59, 59, 999000, tzinfo=UTC)


def _records(spark: Any, values: list[bytes | None], headers: Any = None) -> Any:
    rows = [
        (b"user-1", value, "events", 3, 100 + i, ARRIVED, 0, headers or [])
        for i, value in enumerate(values)
    ]
    return spark.createDataFrame(rows, KAFKA)


def test_bytes_and_coordinates_are_kept_as_they_are(spark: Any) -> None:
    odd = b'\xff\xfe{"timestamp": not json'
    headers = [("reason", b"malformed"), ("source_offset", b"\x00\x01")]
    out = raw_records(_records(spark, [odd, None], headers), "iso_timestamp").collect()
    assert [c for c, _, _ in RAW_COLUMNS] == list(out[0].asDict())
    assert out[0]["value"] == bytearray(odd)
    assert out[1]["value"] is None
    assert out[0]["key"] == bytearray(b"user-1")
    assert [(h["key"], bytes(h["value"])) for h in out[0]["headers"]] == [
        (k, v) for k, v in headers
    ]
    assert [(r["topic"], r["partition"], r["offset"]) for r in out] == [
        ("events", 3, 100),
        ("events", 3, 101),
    ]
    assert all(r["event_time"] is None for r in out)


def test_the_partition_is_the_utc_day_of_arrival(spark: Any) -> None:
    (row,) = raw_records(_records(spark, [b"{}"]), "iso_timestamp").collect()
    assert row["kafka_date"] == date(2026, 3, 1)


def test_event_time_from_iso_events_and_debezium_millis(spark: Any) -> None:
    iso = b'{"timestamp":"2026-02-28T10:00:00.123Z","event_id":"x"}'
    bad = b'{"timestamp":"yesterday"}'
    (good, wrong) = raw_records(_records(spark, [iso, bad]), "iso_timestamp").collect()
    assert good["event_time"] == datetime(2026, 2, 28, 10, 0, 0, 123000)
    assert wrong["event_time"] is None
    cdc = b'{"before":null,"after":{"id":1},"source":{"ts_ms":1772000000000},"ts_ms":1}'
    huge = b'{"source":{"ts_ms":99999999999999999}}'
    (change, nonsense) = raw_records(_records(spark, [cdc, huge]), "debezium_ts_ms").collect()
    assert change["event_time"] == datetime.fromtimestamp(1772000000, UTC).replace(tzinfo=None)
    assert nonsense["event_time"] is None


def _parser_and_archiver(spark: Any, values: list[bytes]) -> list[tuple[Any, Any]]:
    """(the JSON parser's event time, the archiver's) for each value."""
    parser = F.try_to_timestamp(F.get_json_object(F.col("value").cast("string"), "$.timestamp"))
    rows = raw_records(_records(spark, values), "iso_timestamp").select(
        parser.alias("parser"), "event_time"
    )
    return [(r["parser"], r["event_time"]) for r in rows.collect()]


def test_event_time_equals_the_parsers_on_the_generators_records(spark: Any, tmp_path: Any) -> None:
    # every fault the generator makes: truncated JSON, arrays, 70 KB records, bad and future
    # timestamps, unknown fields...; the archiver reads the event time without a parser where
    # it can, and must agree with the parser on every record
    events = tmp_path / "events.jsonl"
    faults = "duplicate=0.05,late=0.05:2h,out_of_order=0.05,malformed=0.1,schema=0.2"
    run(plan(rate=0, duration=None, events=3_000, seed=7, sink=f"file:{events}", start=None,
             faults=faults))  # fmt: skip
    values = [
        line
        for path in (events, transactions_path(events))
        for line in path.read_bytes().splitlines()
        if line
    ]
    pairs = _parser_and_archiver(spark, values)
    assert [a for a, _ in pairs] == [b for _, b in pairs]
    assert sum(a is None for a, _ in pairs) > 10  # the faults without a readable time
    assert sum(a is not None for a, _ in pairs) > 3_000


def test_event_time_where_a_record_departs_from_the_compact_form(spark: Any) -> None:
    t = "2026-02-28T10:00:00.123Z"
    values = [
        f'{{"event_id":"x","timestamp":"{t}"}}',  # the compact form
        f'{{"q":"caf\\u00e9 \\u2615 é☕","timestamp":"{t}"}}',  # multi-byte before it
        f'{{"event_id": "x", "timestamp": "{t}"}}',  # spaces
        f'{{"a":{{"timestamp":"2020-01-01T00:00:00.000Z"}},"timestamp":"{t}"}}',  # nested first
        f'{{"a":"b\\\\","timestamp":"{t}"}}',  # an escaped backslash before the key
        f'{{"x\\"timestamp":"{t}"}}',  # a key ending in an escaped quote
        '{"timestamp":"2026-02-28T10:00:00.123456Z"}',  # microseconds
        '{"timestamp":"2026-02-28T10:00:00.12+01:00"}',  # another width, an offset
        f'{{"timestamp":"{t.replace("T", " ")}"}}',  # bad_timestamp: the parser reads it
        f'{{"timestamp":"2999-01-01{t[10:]}"}}',  # future_timestamp
        '{"timestamp":"2026-13-28T10:00:00.123Z"}',  # no such month
        f'{{"timestamp":"{t}","timestamp":"2020-01-01T00:00:00.000Z"}}',  # twice
        f'{{"timestamp":"{t[:-1]}\\u005a"}}',  # an escape inside the value
        '{"timestamp":1772272800000}',  # a number
        f'[{{"timestamp":"{t}"}}]',  # not an object
        f'{{"event_id":"x","timestamp":"{t}"',  # truncated
        f'{{"timestamp":"{t}"}} ',  # trailing space
        '{"timestamp":"',
        "{}",
    ]
    pairs = _parser_and_archiver(spark, [v.encode() for v in values])
    assert [a for a, _ in pairs] == [b for _, b in pairs]
    assert pairs[0][1] == datetime(2026, 2, 28, 10, 0, 0, 123000)
    assert pairs[3][1] == pairs[0][1]  # the top-level time, not the nested one
    assert pairs[12][1] == pairs[0][1]


def test_event_time_of_broken_json_shaped_like_a_compact_event(spark: Any) -> None:
    # the one departure from the parser (documented in docs/lake.md): bytes that are not JSON
    # but begin with `{`, end with `}` and hold a compact top-level "timestamp" keep that time;
    # the generator's truncated records lose their closing brace and stay without one
    t = "2026-02-28T10:00:00.123Z"
    broken = f'{{"a":"b\\","timestamp":"{t}"}}'.encode()[:5] + f'","timestamp":"{t}"}}'.encode()
    ((parser, archiver),) = _parser_and_archiver(spark, [broken])
    assert parser is None
    assert archiver == datetime(2026, 2, 28, 10, 0, 0, 123000)


def test_a_topic_pattern_matches_its_topic_alone(spark: Any) -> None:
    # Spark's Kafka source finds the pattern in a topic name (Java regex), not a full match
    jvm_pattern = spark.sparkContext._jvm.java.util.regex.Pattern
    pattern = jvm_pattern.compile(exact_topic("events"))
    matching = [
        t
        for t in ("events", "events.dlq", "events.accepted", "x.events")
        if pattern.matcher(t).find()
    ]
    assert matching == ["events"]


def test_one_raw_table_per_topic_with_idempotent_ddl(tmp_path: Any) -> None:
    settings = Settings(home=tmp_path)
    tables = raw_tables(settings)
    assert [t.name for t in tables] == [
        "events",
        "transactions",
        "dead_letters",
        "users_changes",
        "products_changes",
    ]
    assert len({t.topic for t in tables}) == len(tables)
    ddl = create_table_sql(settings, tables[0])
    assert ddl.startswith("CREATE TABLE IF NOT EXISTS lakehouse.raw.events")
    assert "PARTITIONED BY (kafka_date)" in ddl
    assert "'write.parquet.dict-size-bytes' = '16384'" in ddl  # measured: docs/lake.md
    assert exact_topic("shop.public.users") == "^\\Qshop.public.users\\E$"
