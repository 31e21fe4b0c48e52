"""SparkSessions built from settings (no downloads: connector jars installed by `make setup`)."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterable
from pathlib import Path

from pyspark.sql import SparkSession
from pyspark.sql.streaming.query import StreamingQuery

from lambdapipe.errors import Problem
from lambdapipe.resources import Resources
from lambdapipe.settings import Settings

# The Kafka source and its dependencies, installed by `make setup` into <lib>/spark.
KAFKA_JARS = (
    "spark-sql-kafka-0-10_2.13-",
    "spark-token-provider-kafka-0-10_2.13-",
    "kafka-clients-",
    "commons-pool2-",
)


# Iceberg's Spark runtime, its S3 FileIO (AWS SDK v2) and the JDBC catalog's driver.
ICEBERG_JARS = (
    "iceberg-spark-runtime-4.0_2.13-",
    "iceberg-aws-bundle-",
    "postgresql-",
)


def kafka_jars(settings: Settings) -> list[Path]:
    """The connector jars for the Kafka source; a clear error when setup has not run."""
    return _jars(settings, KAFKA_JARS, "Spark's Kafka connector")


def iceberg_jars(settings: Settings) -> list[Path]:
    """The jars for Iceberg tables in the JDBC catalog on S3."""
    return _jars(settings, ICEBERG_JARS, "Iceberg's Spark runtime")


def _jars(settings: Settings, prefixes: tuple[str, ...], what: str) -> list[Path]:
    folder = settings.lib_dir / "spark"
    jars = sorted(folder.glob("*.jar")) if folder.is_dir() else []
    chosen = [jar for prefix in prefixes for jar in jars if jar.name.startswith(prefix)]
    if len(chosen) < len(prefixes):
        raise Problem(
            f"{what} jars are missing from {folder}",
            hint="run `make setup` (it installs them from Maven Central)",
        )
    return chosen


def build_spark(
    settings: Settings,
    app_name: str = "lambdapipe-speed",
    *,
    lake: bool = False,
    driver_memory: str | None = None,
) -> SparkSession:
    """A SparkSession: small shuffles, UTC, Arrow, explicit driver memory, the Kafka source.

    `lake=True` adds the lake's Iceberg catalog (jars, catalog conf, the object store's
    environment for the driver, which in local mode is also the executor, and the executors).
    """
    speed = settings.speed
    master = Resources(settings).spark_master
    jars = kafka_jars(settings) + (iceberg_jars(settings) if lake else [])
    builder = (
        SparkSession.builder.master(master)
        .appName(app_name)
        .config("spark.jars", ",".join(str(jar) for jar in jars))
        .config("spark.driver.memory", driver_memory or speed.driver_memory)
        .config("spark.sql.shuffle.partitions", str(speed.shuffle_partitions))
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.streaming.stateStore.providerClass", _ROCKSDB)
        # commits write a changelog instead of a RocksDB snapshot: ~60% cheaper commits here
        .config("spark.sql.streaming.stateStore.rocksdb.changelogCheckpointing.enabled", "true")
        .config("spark.sql.adaptive.enabled", "false")
        # the job reads every batch's progress; more than 10 batches between two looks never happen
        .config("spark.sql.streaming.numRecentProgressUpdates", "10")
        .config("spark.driver.extraJavaOptions", "-Dlog4j2.level=WARN")
    )
    # Python workers run this interpreter (the project's, with lambdapipe installed), not
    # whichever `python3` is first on PATH; PYSPARK_PYTHON, when set, still chooses
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    if master.startswith("local"):
        # on one machine the driver and block manager listen on loopback only, never on the
        # host's network (on a cluster the executors must reach them: the cluster sets these)
        builder = builder.config("spark.driver.bindAddress", LOOPBACK).config(
            "spark.driver.host", LOOPBACK
        )
    if lake:
        catalog = Resources(settings).lake()
        # the JVM inherits this process's environment when it starts (below)
        os.environ.update(catalog.environment)
        for key, value in catalog.spark_conf.items():
            builder = builder.config(key, value)
        for key, value in catalog.environment.items():
            builder = builder.config(f"spark.executorEnv.{key}", value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("WARN")
    return session


def stop_between_batches(queries: Iterable[StreamingQuery], timeout_s: float = 120) -> None:
    """Stop streaming queries between micro-batches: a running batch (a commit, a store write)
    is let finish, up to `timeout_s`, before `stop()` interrupts it."""
    for query in queries:
        deadline = time.monotonic() + timeout_s
        while query.isActive and query.status["isTriggerActive"]:
            if time.monotonic() > deadline:
                break
            time.sleep(0.1)
        query.stop()


def interrupt_on_sigterm() -> None:
    """A streaming driver stopped with SIGTERM (the supervisor signals the driver alone, not its
    JVM) stops its queries between micro-batches, as on Ctrl-C, then its session."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


LOOPBACK = "127.0.0.1"
# State lives off the JVM heap and checkpoints incrementally.
_ROCKSDB = "org.apache.spark.sql.execution.streaming.state.RocksDBStateStoreProvider"
