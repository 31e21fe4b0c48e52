"""The archiver's work per record, piece by piece, each variant against the other in turns.

No stack, no Kafka, no S3: one local Spark session (2 cores) over generator records (with
faults) cached in memory, `--records` Kafka-shaped rows. Variants, run in turns (each round
runs every variant once) so that the machine's load, which changes by the minute on these
shared cores, falls on all alike:
  none        raw-record rows without an event time (null) -> `noop`: the rest of the work
  parser      raw-record rows with the event time from the JSON parser alone -> `noop`
  archiver    the archiver's `raw_records` (the event time's fast path) -> `noop`
  write_dict  `raw_records` appended to an Iceberg table (local files) with the raw tables'
              properties
  write_small_dict  the same with `write.parquet.dict-size-bytes` = SMALL_DICT_BYTES
Reported per variant: the medians of wall seconds and of the JVM's CPU seconds per round,
records/s and CPU microseconds per record; and the rows where the parser and the archiver
give different event times (must be 0).
Usage: uv run python bench/bench_archive_cpu.py [--records 1000000] [--rounds 5]
       [--variants none,parser,archiver,write_dict,write_small_dict]
Results: bench/results/archive_cpu.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from lambdapipe.generator.run import plan, run
from lambdapipe.lake.archive import raw_records
from lambdapipe.lake.tables import RAW_COLUMNS, TABLE_PROPERTIES
from lambdapipe.settings import Settings
from lambdapipe.spark import iceberg_jars
from measure import REPO, RESULTS

SMALL_DICT_BYTES = 16_384

FAULTS = "duplicate=0.01,late=0.005:2h,out_of_order=0.01,malformed=0.001,schema=0.002"


def parser_event_time(value: Column) -> Column:
    """The archiver's event time before its fast path: Jackson on every record."""
    return F.try_to_timestamp(F.get_json_object(value.cast("string"), "$.timestamp"))


def sample(records: int) -> list[bytes]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "events.jsonl"
        run(plan(rate=0, duration=None, events=min(records, 50_000), seed=42,
                 sink=f"file:{path}", start=None, faults=FAULTS))  # fmt: skip
        return [line for line in path.read_bytes().splitlines() if line]


def kafka_rows(spark: SparkSession, values: list[bytes], records: int) -> DataFrame:
    """`records` Kafka-shaped rows (the values repeated), cached in memory."""
    base = spark.createDataFrame([(v,) for v in values], "value binary")
    copies = -(-records // len(values))
    rows = (
        base.crossJoin(spark.range(copies).withColumnRenamed("id", "copy"))
        .limit(records)
        .select(
            F.substring("value", 14, 36).alias("key"),
            "value",
            F.lit("events").alias("topic"),
            (F.col("copy") % 12).cast("int").alias("partition"),
            F.col("copy").alias("offset"),
            F.current_timestamp().alias("timestamp"),
            F.lit(0).alias("timestampType"),
            F.expr("array()").cast("array<struct<key:string,value:binary>>").alias("headers"),
        )
        .repartition(12)
        .cache()
    )
    rows.count()
    return rows


def timed(write: Any, jvm: psutil.Process) -> tuple[float, float]:
    cpu = jvm.cpu_times()
    began = time.monotonic()
    write()
    after = jvm.cpu_times()
    return time.monotonic() - began, (after.user + after.system) - (cpu.user + cpu.system)


def create_table(spark: SparkSession, name: str, extra: dict[str, str]) -> str:
    table = f"bench.raw.{name}"
    columns = ", ".join(f"`{n}` {kind}" for n, kind, _ in RAW_COLUMNS)
    properties = ", ".join(f"'{k}' = '{v}'" for k, v in {**TABLE_PROPERTIES, **extra}.items())
    spark.sql(f"DROP TABLE IF EXISTS {table}")
    spark.sql(
        f"CREATE TABLE {table} ({columns}) USING iceberg PARTITIONED BY (kafka_date) "
        f"TBLPROPERTIES ({properties})"
    )
    return table


def appending(frame: DataFrame, table: str) -> Any:
    # as the archiver writes: no shuffle before the write, a file per day per task
    return lambda: (
        frame.writeTo(table)
        .option("distribution-mode", "none")
        .option("fanout-enabled", "true")
        .append()
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--variants", default="none,parser,archiver,write_dict,write_small_dict")
    args = parser.parse_args()
    warehouse = Path(tempfile.mkdtemp(prefix="bench-archive-cpu-"))
    jars = iceberg_jars(Settings(lib_home=REPO / ".lambdapipe" / "lib"))
    spark = (
        SparkSession.builder.master("local[2]")
        .appName("bench-archive-cpu")
        .config("spark.driver.memory", "3g")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.jars", ",".join(str(jar) for jar in jars))
        .config(
            "spark.sql.extensions",
            "org.apache.iceberg.spark.extensions.IcebergSparkSessionExtensions",
        )
        .config("spark.sql.catalog.bench", "org.apache.iceberg.spark.SparkCatalog")
        .config("spark.sql.catalog.bench.type", "hadoop")
        .config("spark.sql.catalog.bench.warehouse", str(warehouse))
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    jvm = next(p for p in psutil.Process().children(recursive=True) if p.name() == "java")
    values = sample(args.records)
    rows = kafka_rows(spark, values, args.records)
    archiver = raw_records(rows, "iso_timestamp")
    json_parser = archiver.withColumn("event_time", parser_event_time(F.col("value")))
    differ = (
        archiver.select(F.col("event_time").alias("fast"), "value")
        .withColumn("parsed", parser_event_time(F.col("value")))
        .where(~F.col("fast").eqNullSafe(F.col("parsed")))
        .count()
    )
    spark.sql("CREATE NAMESPACE IF NOT EXISTS bench.raw")
    dict_table = create_table(spark, "write_dict", {})
    small_table = create_table(
        spark, "write_small_dict", {"write.parquet.dict-size-bytes": str(SMALL_DICT_BYTES)}
    )
    no_time = archiver.withColumn("event_time", F.lit(None).cast("timestamp"))
    every = {
        "none": lambda: no_time.write.format("noop").mode("overwrite").save(),
        "parser": lambda: json_parser.write.format("noop").mode("overwrite").save(),
        "archiver": lambda: archiver.write.format("noop").mode("overwrite").save(),
        "write_dict": appending(archiver, dict_table),
        "write_small_dict": appending(archiver, small_table),
    }
    variants = {name: every[name] for name in args.variants.split(",")}
    figures: dict[str, dict[str, list[float]]] = {
        name: {"wall_s": [], "cpu_s": []} for name in variants
    }
    loads = []
    for _ in range(args.rounds):
        for name, write in variants.items():
            loads.append(os.getloadavg()[0])
            wall, cpu = timed(write, jvm)
            figures[name]["wall_s"].append(round(wall, 2))
            figures[name]["cpu_s"].append(round(cpu, 2))
    sizes = {
        name: sum(f.stat().st_size for f in (warehouse / "raw" / name / "data").rglob("*.parquet"))
        for name in ("write_dict", "write_small_dict")
        if name in variants
    }
    spark.stop()
    medians: dict[str, Any] = {}
    for name, runs in figures.items():
        wall, cpu = statistics.median(runs["wall_s"]), statistics.median(runs["cpu_s"])
        medians[name] = {
            "median_wall_s": round(wall, 2),
            "median_cpu_s": round(cpu, 2),
            "records_per_s": round(args.records / wall),
            "cpu_us_per_record": round(cpu / args.records * 1e6, 2),
            "runs": runs,
        }
    for name, size in sizes.items():
        medians[name]["data_mib_per_round"] = round(size / args.rounds / 2**20, 1)
    result = {
        "when": datetime.now(UTC).isoformat(),
        "records": args.records,
        "distinct_values": len(values),
        "rounds": args.rounds,
        "small_dict_bytes": SMALL_DICT_BYTES,
        "load_avg_1m": {"min": round(min(loads), 1), "max": round(max(loads), 1)},
        "rows_where_they_differ": differ,
        **medians,
        "note": "2 shared cores; CPU seconds are the JVM's; rounds alternate the variants",
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "archive_cpu.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    shutil.rmtree(warehouse, ignore_errors=True)


if __name__ == "__main__":
    main()
