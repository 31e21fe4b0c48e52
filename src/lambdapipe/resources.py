"""The one map from the profile to the backends lambdapipe runs on.

A profile names a deployment: `local` (everything on this machine, started by `lambdapipe up`)
or `cluster` (external services only). Each deployment picks a backend for every resource, and
each backend is one function behind an interface (the way pyiceberg maps catalog types to
classes). Business code asks `Resources` for a `ServingStore`, an S3 client, a Spark master:
it never looks at the profile or at a concrete class.

A setting may override a profile's choice for one resource (e.g. the local profile against a
real ClickHouse server: `LAMBDAPIPE_SERVING__BACKEND=server`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

from lambdapipe.settings import Profile, Settings, StoreBackend, WarehouseBackend

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog

    from lambdapipe.serving.guard import Role
    from lambdapipe.serving.store import ServingStore
    from lambdapipe.warehouse.base import Warehouse

# Iceberg catalog types; both profiles use JDBC (PostgreSQL), REST or Glue would be one more entry
LakeCatalogType = Literal["jdbc"]


@dataclass(frozen=True)
class Deployment:
    """What a profile runs on. Fields for the batch side are added as its backends land."""

    # the serving store: ClickHouse embedded in `lambdapipe serve` (chdb), or a server
    store: StoreBackend
    # the Spark master when settings name none
    spark_master: str
    # the lake's Iceberg catalog (tables on the object store)
    lake_catalog: LakeCatalogType
    # the warehouse (RAW, STAGING, MARTS) and the dbt target of the same name
    warehouse: WarehouseBackend
    # whether `lambdapipe up`/`down` start and stop local processes for this profile
    manages_local_stack: bool


DEPLOYMENTS: Final[dict[Profile, Deployment]] = {
    "local": Deployment(
        store="embedded",
        spark_master="local[*]",
        lake_catalog="jdbc",
        warehouse="duckdb",
        manages_local_stack=True,
    ),
    "cluster": Deployment(
        store="server",
        spark_master="",
        lake_catalog="jdbc",
        warehouse="snowflake",
        manages_local_stack=False,
    ),
}


def _embedded_store(settings: Settings, owner: bool, role: Role) -> ServingStore:
    # chdb allows one process per data directory: the serve process owns it, and every other
    # process reaches it through that process's ClickHouse-style HTTP endpoint, as a store user
    if owner:
        from lambdapipe.serving.embedded import EmbeddedStore

        return EmbeddedStore(serving_data_dir(settings))
    from lambdapipe.serving.http import HttpStore

    serving = settings.serving
    user, password = (
        (serving.writer_user, serving.writer_password)
        if role == "writer"
        else (serving.reader_user, serving.reader_password)
    )
    return HttpStore(serving.store_url, user, password, timeout_s=serving.query_timeout_s)


def _server_store(settings: Settings, owner: bool, role: Role) -> ServingStore:
    # a ClickHouse server has its own users: every role signs in as the configured one
    from lambdapipe.serving.http import HttpStore

    serving = settings.serving
    return HttpStore(
        serving.server_url,
        serving.server_user,
        serving.server_password,
        serving.database,
        serving.query_timeout_s,
    )


STORES: Final[dict[StoreBackend, Callable[[Settings, bool, Role], ServingStore]]] = {
    "embedded": _embedded_store,
    "server": _server_store,
}


@dataclass(frozen=True)
class LakeCatalog:
    """How Spark and pyiceberg reach one Iceberg catalog: same name, same tables, same files."""

    name: str
    # `spark.sql.catalog.<name>.*` (and the SQL extensions for the maintenance procedures)
    spark_conf: dict[str, str] = field(repr=False)
    # pyiceberg catalog properties (`load_catalog(name, **properties)`)
    properties: dict[str, str] = field(repr=False)
    # what every process touching the object store needs in its environment (JVM and pyarrow)
    environment: dict[str, str] = field(repr=False)


def _object_store_environment(settings: Settings) -> dict[str, str]:
    # the AWS SDKs' newer checksum defaults break S3-compatible stores (S3Proxy among them)
    return {
        "AWS_REQUEST_CHECKSUM_CALCULATION": "when_required",
        "AWS_RESPONSE_CHECKSUM_VALIDATION": "when_required",
        "AWS_REGION": settings.s3.region,
    }


def _jdbc_lake_catalog(settings: Settings) -> LakeCatalog:
    pg, s3, lake = settings.postgres, settings.s3, settings.lake
    password = pg.catalog_password.get_secret_value()
    warehouse = lake.warehouse_url(s3.bucket)
    prefix = f"spark.sql.catalog.{lake.catalog}"
    spark_conf = {
        prefix: "org.apache.iceberg.spark.SparkCatalog",
        f"{prefix}.catalog-impl": "org.apache.iceberg.jdbc.JdbcCatalog",
        f"{prefix}.uri": f"jdbc:postgresql://{pg.host}:{pg.port}/{pg.catalog_database}",
        f"{prefix}.jdbc.user": pg.catalog_user,
        f"{prefix}.jdbc.password": password,
        # the layout pyiceberg's SqlCatalog shares
        f"{prefix}.jdbc.schema-version": "V1",
        f"{prefix}.warehouse": warehouse,
        f"{prefix}.io-impl": "org.apache.iceberg.aws.s3.S3FileIO",
        f"{prefix}.s3.endpoint": s3.endpoint,
        f"{prefix}.s3.path-style-access": "true",
        f"{prefix}.s3.access-key-id": s3.access_key_id,
        f"{prefix}.s3.secret-access-key": s3.secret_access_key.get_secret_value(),
        f"{prefix}.client.region": s3.region,
        "spark.sql.extensions": (
            "org.apache.iceberg.spark.extensions.IcebergSparkSessionExtensions"
        ),
    }
    properties = {
        "type": "sql",
        "uri": (
            f"postgresql+psycopg://{pg.catalog_user}:{password}@{pg.host}:{pg.port}/"
            f"{pg.catalog_database}"
        ),
        "warehouse": warehouse,
        "py-io-impl": "pyiceberg.io.pyarrow.PyArrowFileIO",
        "s3.endpoint": s3.endpoint,
        "s3.access-key-id": s3.access_key_id,
        "s3.secret-access-key": s3.secret_access_key.get_secret_value(),
        "s3.region": s3.region,
    }
    return LakeCatalog(lake.catalog, spark_conf, properties, _object_store_environment(settings))


LAKE_CATALOGS: Final[dict[LakeCatalogType, Callable[[Settings], LakeCatalog]]] = {
    "jdbc": _jdbc_lake_catalog,
}


def warehouse_path(settings: Settings) -> Path:
    """The DuckDB file of the local warehouse."""
    path = settings.warehouse.duckdb_path or settings.data_dir / "warehouse" / "lambdapipe.duckdb"
    return path.resolve()


def _duckdb_warehouse(settings: Settings) -> Warehouse:
    from lambdapipe.warehouse.duckdb import DuckDBWarehouse

    return DuckDBWarehouse(warehouse_path(settings))


def _snowflake_warehouse(settings: Settings) -> Warehouse:
    from lambdapipe.warehouse.snowflake import SnowflakeWarehouse

    return SnowflakeWarehouse(settings.warehouse)


WAREHOUSES: Final[dict[WarehouseBackend, Callable[[Settings], Warehouse]]] = {
    "duckdb": _duckdb_warehouse,
    "snowflake": _snowflake_warehouse,
}


def serving_data_dir(settings: Settings) -> Path:
    """The chdb data directory of the embedded store."""
    return (settings.serving.data_dir or settings.data_dir / "serving").resolve()


class Resources:
    """The backends of one settings object, chosen by its profile."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.deployment = DEPLOYMENTS[settings.profile]

    @property
    def store_backend(self) -> StoreBackend:
        return self.settings.serving.backend or self.deployment.store

    def store(self, *, owner: bool = False, role: Role = "writer") -> ServingStore:
        """The serving store for this process.

        `owner=True` (only `lambdapipe serve`) opens the engine itself when it is embedded;
        everyone else talks HTTP, to the ClickHouse server or to the serve process, signed in
        as the store user of `role` (the writer, or the reader for those who only read).
        """
        return STORES[self.store_backend](self.settings, owner, role)

    @property
    def serves_store_endpoint(self) -> bool:
        """Whether `lambdapipe serve` exposes the store over HTTP (it owns an embedded engine)."""
        return self.store_backend == "embedded"

    @property
    def store_location(self) -> str:
        """Where the store's data lives, for people: a directory or a server URL."""
        if self.store_backend == "embedded":
            return str(serving_data_dir(self.settings))
        return self.settings.serving.server_url

    @property
    def spark_master(self) -> str:
        from lambdapipe.errors import Problem

        master = self.settings.speed.master or self.deployment.spark_master
        if not master:
            raise Problem(
                f"profile {self.settings.profile!r} has no Spark master",
                hint="set LAMBDAPIPE_SPEED__MASTER (e.g. k8s://https://<api-server>:6443)",
            )
        return master

    @property
    def manages_local_stack(self) -> bool:
        return self.deployment.manages_local_stack

    def lake(self) -> LakeCatalog:
        """The lake's Iceberg catalog, as Spark and pyiceberg configure it."""
        return LAKE_CATALOGS[self.deployment.lake_catalog](self.settings)

    def lake_catalog(self) -> Catalog:
        """The lake's catalog through pyiceberg (reads, status, snapshots); close it after use
        (`with Resources(settings).lake_catalog() as catalog:`): it holds database connections.
        """
        from pyiceberg.catalog import load_catalog
        from sqlalchemy.exc import OperationalError

        from lambdapipe.errors import Problem

        lake = self.lake()
        # pyarrow's S3 client reads the checksum switches from the environment
        os.environ.update(lake.environment)
        try:
            return load_catalog(lake.name, **lake.properties)
        except OperationalError as exc:
            pg = self.settings.postgres
            raise Problem(
                f"the lake's catalog at {pg.host}:{pg.port}/{pg.catalog_database} does not answer",
                hint="start the stack (`lambdapipe up`) or check the PostgreSQL settings",
            ) from exc

    @property
    def warehouse_backend(self) -> WarehouseBackend:
        return self.settings.warehouse.backend or self.deployment.warehouse

    def warehouse(self) -> Warehouse:
        """The warehouse (not yet connected: `with resources.warehouse() as wh:`)."""
        return WAREHOUSES[self.warehouse_backend](self.settings)

    @property
    def warehouse_location(self) -> str:
        """Where the warehouse is, for people: the DuckDB file or the Snowflake database."""
        if self.warehouse_backend == "duckdb":
            return str(warehouse_path(self.settings))
        wh = self.settings.warehouse
        return f"snowflake://{wh.snowflake_account}/{wh.snowflake_database}"

    def s3_client(self) -> Any:
        """A boto3 S3 client for the object store (path-style: S3Proxy and most S3 stores)."""
        import boto3
        from botocore.config import Config

        s3 = self.settings.s3
        return boto3.client(
            "s3",
            endpoint_url=s3.endpoint,
            region_name=s3.region,
            aws_access_key_id=s3.access_key_id,
            aws_secret_access_key=s3.secret_access_key.get_secret_value(),
            config=Config(
                s3={"addressing_style": "path"},
                retries={"max_attempts": 3},
                # S3-compatible stores (S3Proxy among them) reject the newer checksum headers
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            ),
        )
