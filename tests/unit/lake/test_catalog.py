"""The lake catalog in the resources map, and the maintenance calls built from settings."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from lambdapipe.lake.maintain import procedures
from lambdapipe.resources import DEPLOYMENTS, Resources
from lambdapipe.settings import Settings


def _settings(tmp_path: Path, **changes: object) -> Settings:
    return Settings(home=tmp_path, **changes)  # type: ignore[arg-type]


def test_spark_and_pyiceberg_see_one_catalog(tmp_path: Path) -> None:
    settings = _settings(tmp_path, postgres={"catalog_password": "s3cret-pw"})
    lake = Resources(settings).lake()
    assert lake.name == "lakehouse"
    spark = lake.spark_conf
    assert spark["spark.sql.catalog.lakehouse"] == "org.apache.iceberg.spark.SparkCatalog"
    assert spark["spark.sql.catalog.lakehouse.jdbc.schema-version"] == "V1"
    assert spark["spark.sql.catalog.lakehouse.s3.path-style-access"] == "true"
    assert spark["spark.sql.catalog.lakehouse.uri"].endswith(":15432/iceberg_catalog")
    assert lake.properties["uri"].startswith("postgresql+psycopg://iceberg_catalog:")
    # one warehouse for both engines
    assert spark["spark.sql.catalog.lakehouse.warehouse"] == lake.properties["warehouse"]
    assert lake.properties["warehouse"] == "s3://lakehouse/warehouse"
    assert lake.environment["AWS_REQUEST_CHECKSUM_CALCULATION"] == "when_required"
    assert "s3cret-pw" not in repr(lake)


def test_every_profile_has_a_lake_catalog_and_ports_shift(tmp_path: Path) -> None:
    assert {d.lake_catalog for d in DEPLOYMENTS.values()} == {"jdbc"}
    shifted = _settings(tmp_path, port_offset=1000)
    assert shifted.lake.metrics_port == Settings(home=tmp_path).lake.metrics_port + 1000
    assert (
        Resources(shifted)
        .lake()
        .spark_conf["spark.sql.catalog.lakehouse.uri"]
        .endswith(":16432/iceberg_catalog")
    )


def test_maintenance_expires_by_the_settings_retention(tmp_path: Path) -> None:
    settings = _settings(tmp_path, lake={"snapshot_retention_s": 3600, "retain_last": 4})
    calls = procedures(settings, "events", datetime(2026, 3, 2, 12, 0, tzinfo=UTC))
    assert list(calls) == [
        "rewrite_data_files",
        "expire_snapshots",
        "rewrite_manifests",
        "remove_orphan_files",
    ]
    assert "TIMESTAMP '2026-03-02 11:00:00.000000'" in calls["expire_snapshots"]
    assert "retain_last => 4" in calls["expire_snapshots"]
    assert all("lakehouse.system." in sql and "'raw.events'" in sql for sql in calls.values())
