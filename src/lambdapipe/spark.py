"""SparkSessions built from settings (no downloads: connector jars installed by `make setup`)."""

from __future__ import annotations

from pathlib import Path

from pyspark.sql import SparkSession

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


def kafka_jars(settings: Settings) -> list[Path]:
    """The connector jars for the Kafka source; a clear error when setup has not run."""
    folder = settings.lib_dir / "spark"
    jars = sorted(folder.glob("*.jar")) if folder.is_dir() else []
    chosen = [jar for prefix in KAFKA_JARS for jar in jars if jar.name.startswith(prefix)]
    if len(chosen) < len(KAFKA_JARS):
        raise Problem(
            f"Spark's Kafka connector jars are missing from {folder}",
            hint="run `make setup` (it installs them from Maven Central)",
        )
    return chosen


def build_spark(settings: Settings, app_name: str = "lambdapipe-speed") -> SparkSession:
    """A SparkSession for the speed layer: small shuffles, UTC, Arrow, explicit driver memory."""
    speed = settings.speed
    builder = (
        SparkSession.builder.master(Resources(settings).spark_master)
        .appName(app_name)
        .config("spark.jars", ",".join(str(jar) for jar in kafka_jars(settings)))
        .config("spark.driver.memory", speed.driver_memory)
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
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("WARN")
    return session


# State lives off the JVM heap and checkpoints incrementally.
_ROCKSDB = "org.apache.spark.sql.execution.streaming.state.RocksDBStateStoreProvider"
