"""The lake on the real stack: Kafka -> Spark archiver -> Iceberg (PostgreSQL catalog, S3Proxy).

Every check compares the raw tables, read through pyiceberg, with Kafka itself: the same
(partition, offset) set, each record's key, value and headers byte-for-byte (a hash of all,
and a sample compared field by field), nothing missing and nothing twice.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from lambdapipe.ingest import cdc
from lambdapipe.ingest.load import load_dimensions
from lambdapipe.lake.status import lake_status
from lambdapipe.lake.tables import RawTable, raw_tables
from lambdapipe.resources import Resources
from lambdapipe.runtime.stack import Stack
from lambdapipe.settings import Settings, as_environment
from lambdapipe.topics import quiet

pytestmark = [pytest.mark.integration, pytest.mark.slow]

Record = tuple[int, int, bytes | None, bytes | None, tuple[tuple[str, bytes | None], ...]]


class Archiver:
    """`lambdapipe lake archive` as its own process group (kill -9 takes its JVM too)."""

    def __init__(self, settings: Settings, folder: Path) -> None:
        self.settings = settings
        self.folder = folder
        self.runs = 0
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        self.runs += 1
        env = {
            **os.environ,
            **as_environment(self.settings),
            "LAMBDAPIPE_LAKE__DRIVER_MEMORY": "1g",
            "LAMBDAPIPE_LAKE__METRICS_PORT": "0",
        }
        with (self.folder / f"archive-{self.runs}.log").open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "lambdapipe.cli", "lake", "archive", *args],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self.process

    def wait(self, timeout_s: float = 420) -> None:
        assert self.process is not None
        code = self.process.wait(timeout=timeout_s)
        self.process = None
        assert code == 0, self.log()

    def kill(self) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        self.process = None

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        self.process = None

    def log(self) -> str:
        return "\n".join(
            (self.folder / f"archive-{i}.log").read_text(errors="replace")[-3000:]
            for i in range(1, self.runs + 1)
        )


def kafka_records(settings: Settings, topic: str) -> list[Record]:
    """Every record of `topic`, read partition by partition from the start to the end."""
    consumer = Consumer(
        quiet(
            {
                "bootstrap.servers": settings.kafka.bootstrap,
                "group.id": f"lake-test-{uuid.uuid4()}",
                "enable.auto.commit": False,
            }
        )
    )
    metadata = consumer.list_topics(topic, timeout=10).topics.get(topic)
    records: list[Record] = []
    if metadata is None or metadata.error is not None:
        consumer.close()
        return records
    ends = {}
    for p in metadata.partitions:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
        if high > low:
            ends[p] = high
    consumer.assign([TopicPartition(topic, p, 0) for p in ends])
    done: set[int] = set()
    deadline = time.monotonic() + 120
    while len(done) < len(ends) and time.monotonic() < deadline:
        for m in consumer.consume(5000, timeout=1):
            if m.error() is not None:
                continue
            headers = tuple((k, v) for k, v in (m.headers() or []))
            records.append((m.partition(), m.offset(), m.key(), m.value(), headers))
            if m.offset() + 1 >= ends[m.partition()]:
                done.add(m.partition())
    consumer.close()
    assert len(done) == len(ends), f"could not read {topic} to its end"
    return records


def lake_records(
    settings: Settings, table: RawTable, snapshot_id: int | None = None
) -> list[Record]:
    with Resources(settings).lake_catalog() as catalog:
        loaded = catalog.load_table(f"{settings.lake.namespace}.{table.name}")
    data = loaded.scan(
        selected_fields=("topic", "partition", "offset", "key", "value", "headers"),
        snapshot_id=snapshot_id,
    ).to_arrow()
    topics = set(data["topic"].to_pylist())
    assert topics <= {table.topic}, f"{table.name} holds records of {topics}"
    return [
        (
            r["partition"],
            r["offset"],
            r["key"],
            r["value"],
            tuple((h["key"], h["value"]) for h in r["headers"] or []),
        )
        for r in data.to_pylist()
    ]


def digest(records: list[Record]) -> str:
    h = hashlib.sha256()
    for p, o, key, value, headers in sorted(records, key=lambda r: (r[0], r[1])):
        h.update(f"{p}:{o}:".encode())
        for part in (key, value, *(b for kv in headers for b in (kv[0].encode(), kv[1]))):
            h.update(b"N" if part is None else len(part).to_bytes(4, "big") + part)
    return h.hexdigest()


def assert_lake_is_kafka(settings: Settings) -> dict[str, int]:
    """Each raw table holds exactly its topic's records, byte for byte. Returns the counts."""
    counts = {}
    for table in raw_tables(settings):
        kafka = kafka_records(settings, table.topic)
        lake = lake_records(settings, table)
        coordinates = [(r[0], r[1]) for r in lake]
        assert len(coordinates) == len(set(coordinates)), f"{table.name}: an offset twice"
        assert set(coordinates) == {(r[0], r[1]) for r in kafka}, f"{table.name}: offsets differ"
        assert len(lake) == len(kafka)
        by_offset = {(r[0], r[1]): r for r in lake}
        for record in random.Random(7).sample(kafka, min(50, len(kafka))):
            assert by_offset[(record[0], record[1])] == record
        assert digest(lake) == digest(kafka), f"{table.name}: bytes differ"
        counts[table.name] = len(kafka)
    return counts


def produce_dead_letters(settings: Settings, n: int) -> None:
    """Records as the speed layer dead-letters them: original bytes, reason in the headers."""
    producer = Producer(quiet({"bootstrap.servers": settings.kafka.bootstrap}))
    for i in range(n):
        headers = [
            ("reason", b"malformed"),
            ("source_topic", b"events"),
            ("source_offset", str(i).encode()),
            ("binary", bytes([i % 256, 0, 255])),
            ("empty", None),
        ]
        value = b"\xff\x00not json" if i % 2 else b'{"timestamp":"2026-03-02T10:00:00.000Z"}'
        producer.produce(settings.kafka.dlq_topic, value, key=f"u{i % 7}".encode(), headers=headers)
    assert producer.flush(30) == 0


def generate(settings: Settings, events: int, seed: int) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "lambdapipe.cli",
            "generate",
            "--events",
            str(events),
            "--seed",
            str(seed),
            "--users",
            "300",
            "--products",
            "100",
            "--faults",
            "duplicate=0.02,malformed=0.01,out_of_order=0.01,late=0.01:2h",
        ],
        env={**os.environ, **as_environment(settings)},
        check=True,
        capture_output=True,
        timeout=300,
    )


def wait_for_rows(settings: Settings, table: str, at_least: int, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        rows = {s.name: s.rows for s in lake_status(settings, with_kafka=False)}
        if rows.get(table, 0) >= at_least:
            return
        time.sleep(2)
    raise AssertionError(f"{table} did not reach {at_least} rows")


@pytest.fixture(scope="module")
def lake(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Archiver]:
    archiver = Archiver(stack.settings, tmp_path_factory.mktemp("lake"))
    yield archiver
    archiver.stop()


def test_raw_tables_hold_exactly_their_topics_records(lake: Archiver) -> None:
    settings = lake.settings
    generate(settings, 6_000, seed=11)
    produce_dead_letters(settings, 40)
    # the CDC topics do not exist yet: the archiver starts without them and picks them up
    lake.start("--commit-interval", "3s")
    try:
        load_dimensions(settings, 120, 40, 5)
        cdc.register(settings)
        wait_for_rows(settings, "users_changes", 120)
        wait_for_rows(settings, "products_changes", 40)
    except AssertionError:
        raise AssertionError(lake.log()) from None
    lake.stop()
    lake.start("--commit-interval", "3s", "--until-idle", "6")
    lake.wait()
    counts = assert_lake_is_kafka(settings)
    assert counts["events"] > 6_000
    assert counts["dead_letters"] == 40
    assert counts["users_changes"] >= 120
    status = {s.name: s for s in lake_status(settings)}
    assert all(s.behind == 0 for s in status.values())
    assert status["events"].rows == counts["events"]


def test_kill_9_mid_run_loses_and_duplicates_nothing(lake: Archiver) -> None:
    settings = lake.settings
    before = {s.name: s.rows for s in lake_status(settings, with_kafka=False)}
    generate(settings, 40_000, seed=12)
    for delay in (0.0, 1.7):
        lake.start("--commit-interval", "1s", "--max-offsets", "3000")
        wait_for_rows(settings, "events", before["events"] + 3_000)
        time.sleep(delay)
        lake.kill()
        before = {s.name: s.rows for s in lake_status(settings, with_kafka=False)}
    lake.start("--commit-interval", "2s", "--until-idle", "6")
    lake.wait()
    assert_lake_is_kafka(settings)


def test_an_object_store_outage_of_30_s_loses_and_duplicates_nothing(
    lake: Archiver, stack: Stack
) -> None:
    settings = lake.settings
    start = {s.name: s.rows for s in lake_status(settings, with_kafka=False)}
    generate(settings, 30_000, seed=14)
    lake.start("--commit-interval", "1s", "--max-offsets", "2000")
    wait_for_rows(settings, "events", start["events"] + 2_000)
    stack.down(["s3proxy"], progress=lambda line: None)
    time.sleep(30)
    stack.up(["s3proxy"], progress=lambda line: None)
    # the same process resumes (its queries restart from their checkpoints)
    wait_for_rows(settings, "events", start["events"] + 20_000)
    assert lake.process is not None and lake.process.poll() is None, lake.log()
    lake.stop()
    lake.start("--commit-interval", "2s", "--until-idle", "6")
    lake.wait()
    assert_lake_is_kafka(settings)


def maintain(settings: Settings, folder: Path, **lake: str) -> str:
    env = {
        **os.environ,
        **as_environment(settings),
        **{f"LAMBDAPIPE_LAKE__{k.upper()}": v for k, v in lake.items()},
    }
    done = subprocess.run(
        [sys.executable, "-m", "lambdapipe.cli", "lake", "maintain"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        cwd=folder,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def committed_snapshots(settings: Settings, table: str) -> dict[int, int]:
    """{snapshot id: total records} of a table's snapshots."""
    with Resources(settings).lake_catalog() as catalog:
        loaded = catalog.load_table(f"{settings.lake.namespace}.{table}")
    return {
        s.snapshot_id: int(s.summary.additional_properties["total-records"])
        for s in loaded.snapshots()
        if s.summary is not None
    }


def test_maintenance_while_archiving_loses_nothing_and_old_snapshots_keep_their_rows(
    lake: Archiver, tmp_path: Path
) -> None:
    settings = lake.settings
    start = {s.name: s.rows for s in lake_status(settings, with_kafka=False)}
    generate(settings, 40_000, seed=13)
    lake.start("--commit-interval", "1s", "--max-offsets", "2000")
    wait_for_rows(settings, "events", start["events"] + 6_000)
    # compaction and expiry while the archiver keeps appending; nothing old enough expires
    first = maintain(settings, tmp_path)
    assert "events" in first
    seen = committed_snapshots(settings, "events")
    lake.stop()
    lake.start("--commit-interval", "2s", "--until-idle", "6")
    lake.wait()
    assert_lake_is_kafka(settings)
    # every snapshot read in the past holds exactly what it held when committed
    events = next(t for t in raw_tables(settings) if t.name == "events")
    for snapshot_id, total in random.Random(3).sample(sorted(seen.items()), min(6, len(seen))):
        rows = lake_records(settings, events, snapshot_id)
        assert len(rows) == total
        assert len({(r[0], r[1]) for r in rows}) == total
    # then expire all but two snapshots and compact: the data is the same, in fewer files
    maintain(settings, tmp_path, snapshot_retention_s="0", retain_last="2")
    assert len(committed_snapshots(settings, "events")) <= 3
    assert_lake_is_kafka(settings)
    with Resources(settings).lake_catalog() as catalog:
        loaded = catalog.load_table(f"{settings.lake.namespace}.events")
    days = len(
        set(loaded.scan(selected_fields=("kafka_date",)).to_arrow()["kafka_date"].to_pylist())
    )
    # compacted: one file per day of arrival (a few more if a commit landed during the rewrite)
    assert loaded.inspect.files().num_rows <= 2 * days


def cli(settings: Settings, *args: str, schemas: Path | None = None) -> str:
    env = {**os.environ, **as_environment(settings)}
    if schemas is not None:
        env["LAMBDAPIPE_SCHEMAS_DIR"] = str(schemas)
    done = subprocess.run(
        [sys.executable, "-m", "lambdapipe.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def _evolved_schemas(tmp_path: Path) -> Path:
    """A copy of schemas/ where page_view gains an optional, nullable `coupon_code`."""
    import orjson

    from lambdapipe.contracts.registry import schemas_dir

    evolved = tmp_path / "schemas"
    shutil.copytree(schemas_dir(), evolved)
    page_view = evolved / "events" / "page_view.json"
    doc = orjson.loads(page_view.read_bytes())
    doc["properties"]["coupon_code"] = {"type": ["string", "null"], "maxLength": 32}
    page_view.write_bytes(orjson.dumps(doc))
    return evolved


def test_an_optional_field_added_to_a_schema_adds_a_curated_column(
    stack: Stack, tmp_path: Path
) -> None:
    settings = stack.settings
    cli(settings, "lake", "evolve")
    row = {"event_id": "11da0497-c204-4db7-b49e-41b9c3a969ad", "event_type": "login"}
    with Resources(settings).lake_catalog() as catalog:  # an append commits through it
        curated = catalog.load_table(f"{settings.lake.curated_namespace}.events")
        curated.append(pa.Table.from_pylist([row], schema=curated.schema().as_arrow()))

    cli(settings, "lake", "evolve", schemas=_evolved_schemas(tmp_path))
    with Resources(settings).lake_catalog() as catalog:
        table = catalog.load_table(f"{settings.lake.curated_namespace}.events")
    assert "coupon_code" in table.schema().column_names
    rows = table.scan(selected_fields=("event_id", "coupon_code")).to_arrow().to_pylist()
    assert rows == [{"event_id": "11da0497-c204-4db7-b49e-41b9c3a969ad", "coupon_code": None}]


def test_schemas_check_accepts_an_optional_field_on_an_event(stack: Stack, tmp_path: Path) -> None:
    settings = stack.settings
    cli(settings, "schemas", "register")
    cli(settings, "schemas", "check", schemas=_evolved_schemas(tmp_path))
