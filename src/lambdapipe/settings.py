"""Typed settings: every endpoint, path and secret lambdapipe uses, in one frozen object.

Values come from environment variables prefixed `LAMBDAPIPE_` (nested with `__`, e.g.
`LAMBDAPIPE_KAFKA__BOOTSTRAP_SERVERS`), then from `<home>/secrets.env` (written by the local
profile on first use with random passwords), then from the defaults below. Secrets are
`SecretStr`: they never appear in reprs or logs, and none is written in code.
"""

from __future__ import annotations

import os
import secrets
from functools import cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

Profile = Literal["local", "cluster"]
StoreBackend = Literal["embedded", "server"]
WarehouseBackend = Literal["duckdb", "snowflake"]

SECRET_FIELDS = (
    "POSTGRES__ADMIN_PASSWORD",
    "POSTGRES__APP_PASSWORD",
    "POSTGRES__DEBEZIUM_PASSWORD",
    "POSTGRES__CATALOG_PASSWORD",
    "POSTGRES__REGISTRY_PASSWORD",
    "S3__SECRET_ACCESS_KEY",
    "SERVING__WRITER_PASSWORD",
    "SERVING__READER_PASSWORD",
    "SERVING__API_TOKEN",
)


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PostgresSettings(_Section):
    """PostgreSQL: one server, a database and a role per concern."""

    host: str = "127.0.0.1"
    port: int = 15432
    admin_user: str = "lambdapipe_admin"
    admin_password: SecretStr = SecretStr("")
    app_user: str = "shop_app"
    app_password: SecretStr = SecretStr("")
    app_database: str = "shop"
    debezium_user: str = "debezium"
    debezium_password: SecretStr = SecretStr("")
    catalog_user: str = "iceberg_catalog"
    catalog_password: SecretStr = SecretStr("")
    catalog_database: str = "iceberg_catalog"
    registry_user: str = "apicurio"
    registry_password: SecretStr = SecretStr("")
    registry_database: str = "apicurio"


class KafkaSettings(_Section):
    """Kafka: local KRaft nodes listen on `port + 100 * i` (controller on the next port)."""

    bootstrap_servers: str = ""
    host: str = "127.0.0.1"
    port: int = 9092
    nodes: int = 1
    partitions: int = 6
    heap: str = "384m"
    events_topic: str = "events"
    transactions_topic: str = "transactions"
    dlq_topic: str = "events.dlq"
    # the speed layer's accepted events, from its records query to its sessions query;
    # empty: `<events_topic>.accepted`
    accepted_topic: str = ""
    cdc_topic_prefix: str = "shop"
    # replication of lambdapipe's topics; 0: from the local node count (3 nodes: 3 and 2)
    replication_factor: int = 0
    min_insync_replicas: int = 0

    @property
    def replication(self) -> tuple[int, int]:
        """(replication factor, min.insync.replicas) of lambdapipe's topics."""
        rf = self.replication_factor or (3 if self.nodes >= 3 else 1)
        min_isr = self.min_insync_replicas or max(1, rf - 1)
        return rf, min_isr

    @property
    def accepted(self) -> str:
        """The accepted-events topic (speed layer internal)."""
        return self.accepted_topic or f"{self.events_topic}.accepted"

    def broker_port(self, index: int) -> int:
        return self.port + 100 * index

    def controller_port(self, index: int) -> int:
        return self.port + 100 * index + 1

    @property
    def bootstrap(self) -> str:
        if self.bootstrap_servers:
            return self.bootstrap_servers
        return ",".join(f"{self.host}:{self.broker_port(i)}" for i in range(self.nodes))


class ConnectSettings(_Section):
    """Kafka Connect distributed worker (runs Debezium)."""

    url: str = ""
    host: str = "127.0.0.1"
    port: int = 8083
    heap: str = "384m"
    group_id: str = "lambdapipe-connect"

    @property
    def endpoint(self) -> str:
        return self.url or f"http://{self.host}:{self.port}"


class RegistrySettings(_Section):
    """Apicurio Registry, used through its Confluent-compatible API."""

    url: str = ""
    host: str = "127.0.0.1"
    port: int = 8081
    heap: str = "256m"

    @property
    def endpoint(self) -> str:
        return self.url or f"http://{self.host}:{self.port}"

    @property
    def ccompat(self) -> str:
        return f"{self.endpoint}/apis/ccompat/v7"


class S3Settings(_Section):
    """S3 endpoint (S3Proxy locally) and the lake bucket."""

    endpoint_url: str = ""
    host: str = "127.0.0.1"
    port: int = 9000
    region: str = "us-east-1"
    access_key_id: str = "lambdapipe"
    secret_access_key: SecretStr = SecretStr("")
    bucket: str = "lakehouse"
    heap: str = "192m"

    @property
    def endpoint(self) -> str:
        return self.endpoint_url or f"http://{self.host}:{self.port}"


class PrometheusSettings(_Section):
    """Prometheus server, and the JMX exporter ports of the JVM services."""

    url: str = ""
    host: str = "127.0.0.1"
    port: int = 19090
    scrape_interval: str = "5s"
    kafka_exporter_port: int = 7071
    connect_exporter_port: int = 7081

    @property
    def endpoint(self) -> str:
        return self.url or f"http://{self.host}:{self.port}"


class ServingSettings(_Section):
    """Serving store and API: embedded ClickHouse (chdb) owned by `lambdapipe serve`, or a server.

    With backend `embedded`, `lambdapipe serve` owns `data_dir` and every other process reaches
    the store through the serve process's ClickHouse-style HTTP endpoint (`store_url`). With
    backend `server`, every process talks to the ClickHouse server at `server_url` directly.
    """

    # empty: the profile's choice (resources.py): embedded locally, a server on a cluster
    backend: StoreBackend | None = None
    # chdb data directory; defaults to <home>/data/serving
    data_dir: Path | None = None
    host: str = "127.0.0.1"
    port: int = 8123
    server_url: str = ""
    server_user: str = "default"
    server_password: SecretStr = SecretStr("")
    database: str = "default"
    # the users of the serve process's store endpoint (docs/serving.md): the writer (speed
    # layer, batch publication) and the reader (dashboards, `lambdapipe query sql`, tools)
    writer_user: str = "lambdapipe_writer"
    writer_password: SecretStr = SecretStr("")
    reader_user: str = "lambdapipe_reader"
    reader_password: SecretStr = SecretStr("")
    # the bearer token of the JSON API and the dashboard
    api_token: SecretStr = SecretStr("")
    # the audit log (JSON lines, <home>/logs/audit.jsonl) rotates at this size, keeping 5 files
    audit_max_bytes: int = 10_000_000
    retention_days: int = 30
    insert_timeout_s: float = 60.0
    query_timeout_s: float = 30.0

    @property
    def endpoint(self) -> str:
        """Base URL of the serving API and dashboard."""
        return f"http://{self.host}:{self.port}"

    @property
    def store_url(self) -> str:
        """The ClickHouse HTTP interface other processes use: a server, or the serve process."""
        return self.server_url or f"{self.endpoint}/clickhouse/"


class SpeedSettings(_Section):
    """The speed layer: one Spark Structured Streaming job from Kafka to the serving store.

    Durations are in seconds. The watermark delay is `lateness_s + max_future_skew_s`, so no
    event the job accepts as on time can fall behind the watermark (docs/speed.md).
    """

    # empty: the profile's choice (resources.py, local[*] locally); spark:// or k8s:// URLs
    master: str = ""
    trigger_interval: str = "2 seconds"
    max_offsets_per_trigger: int = 200_000
    # a local directory or an s3a:// URL; defaults to <home>/data/speed/checkpoints
    checkpoint_location: str = ""
    # an event older than this (against the micro-batch time) is dead-lettered as `late`
    lateness_s: int = 600
    # the validator's limit for event times ahead of the clock (contracts default: 5 minutes)
    max_future_skew_s: int = 300
    session_gap_s: int = 1800
    driver_memory: str = "1g"
    # Spark tasks per micro-batch: the state stores' partitions (fixed by the first checkpoint)
    # and the tasks reading Kafka (0: one per Kafka partition). Match the cores you have.
    shuffle_partitions: int = 2
    source_partitions: int = 2
    # a lost offset range (retention, truncation) stops the job unless this is set explicitly
    fail_on_data_loss: bool = True
    # how long a write to the store is retried before the batch fails (and the query restarts)
    store_retry_s: float = 120.0
    max_restarts: int = 5
    metrics_port: int = 9108


class LakeSettings(_Section):
    """The lake: raw history in Iceberg tables (JDBC catalog on PostgreSQL, data on S3).

    Every micro-batch of the archiver is one Iceberg commit per table, so `commit_interval` is
    also the lake's freshness; `lambdapipe lake maintain` compacts what the commits leave.
    """

    # the Iceberg catalog's name: identical in Spark and pyiceberg (tables record it)
    catalog: str = "lakehouse"
    namespace: str = "raw"
    # tables derived from the contracts (schemas/), evolved when a schema gains a field
    curated_namespace: str = "curated"
    # empty: s3://<s3.bucket>/warehouse
    warehouse: str = ""
    commit_interval: str = "60 seconds"
    # a backlog drains in commits of at most this many records per table
    max_offsets_per_trigger: int = 500_000
    # a local directory or an s3a:// URL; defaults to <home>/data/lake/checkpoints
    checkpoint_location: str = ""
    # `maintain` expires snapshots older than this, keeping at least `retain_last` of them
    snapshot_retention_s: int = 7 * 24 * 3600
    retain_last: int = 5
    # files older than this and in no snapshot are orphans (longer than any running commit)
    orphan_age_s: int = 3 * 24 * 3600
    driver_memory: str = "1g"
    fail_on_data_loss: bool = True
    # consecutive failed restarts (object store or catalog away) before the archiver gives up
    max_restarts: int = 8
    metrics_port: int = 9109

    def warehouse_url(self, bucket: str) -> str:
        return self.warehouse or f"s3://{bucket}/warehouse"


class WarehouseSettings(_Section):
    """The warehouse (RAW, STAGING, MARTS): a DuckDB file locally, Snowflake on a cluster.

    dbt reads the same values through the profiles.yml `lambdapipe.warehouse.transform` writes;
    the Snowflake password reaches dbt as an environment variable, never in a file.
    """

    # empty: the profile's choice (resources.py): duckdb locally, snowflake on a cluster
    backend: WarehouseBackend | None = None
    # the DuckDB file; defaults to <home>/data/warehouse/lambdapipe.duckdb
    duckdb_path: Path | None = None
    snowflake_account: str = ""
    snowflake_user: str = ""
    snowflake_password: SecretStr = SecretStr("")
    snowflake_database: str = "LAMBDAPIPE"
    snowflake_warehouse: str = ""
    snowflake_role: str = ""
    # empty: the account's own host; set host, port and protocol for a local fakesnow server
    snowflake_host: str = ""
    snowflake_port: int = 443
    snowflake_protocol: Literal["https", "http"] = "https"
    # dbt's parallel models
    threads: int = 2
    # the dbt project; defaults to dbt/ in the source tree
    dbt_project_dir: Path | None = None


class ReconcileSettings(_Section):
    """`lambdapipe reconcile`: how much disagreement a day may show before it fails."""

    # speed vs batch differences no cause explains, per metric (count, or money in units)
    max_unexplained: float = 0.0
    # batch vs the generator's truth, per metric, when a truth file is given
    max_batch_vs_truth: float = 0.0


class Settings(BaseSettings):
    """All of lambdapipe's configuration. Build it with `get_settings()`."""

    model_config = SettingsConfigDict(
        env_prefix="LAMBDAPIPE_",
        env_nested_delimiter="__",
        frozen=True,
        extra="ignore",
    )

    profile: Profile = "local"
    home: Path = Path(".lambdapipe")
    # JVM artifacts installed by `make setup`; defaults to <home>/lib
    lib_home: Path | None = None
    # Shifts every local port: lets a second stack (e.g. the test suite) run beside the first.
    port_offset: int = 0
    ready_timeout_s: float = 90.0

    postgres: PostgresSettings = PostgresSettings()
    kafka: KafkaSettings = KafkaSettings()
    connect: ConnectSettings = ConnectSettings()
    registry: RegistrySettings = RegistrySettings()
    s3: S3Settings = S3Settings()
    prometheus: PrometheusSettings = PrometheusSettings()
    serving: ServingSettings = ServingSettings()
    speed: SpeedSettings = SpeedSettings()
    lake: LakeSettings = LakeSettings()
    warehouse: WarehouseSettings = WarehouseSettings()
    reconcile: ReconcileSettings = ReconcileSettings()

    def model_post_init(self, context: object, /) -> None:
        if self.port_offset:
            shifted = {
                "postgres": {"port": self.postgres.port + self.port_offset},
                "kafka": {"port": self.kafka.port + self.port_offset},
                "connect": {"port": self.connect.port + self.port_offset},
                "registry": {"port": self.registry.port + self.port_offset},
                "s3": {"port": self.s3.port + self.port_offset},
                "serving": {"port": self.serving.port + self.port_offset},
                "speed": {"metrics_port": self.speed.metrics_port + self.port_offset},
                "lake": {"metrics_port": self.lake.metrics_port + self.port_offset},
                "prometheus": {
                    "port": self.prometheus.port + self.port_offset,
                    "kafka_exporter_port": self.prometheus.kafka_exporter_port + self.port_offset,
                    "connect_exporter_port": self.prometheus.connect_exporter_port
                    + self.port_offset,
                },
            }
            for name, changes in shifted.items():
                object.__setattr__(self, name, getattr(self, name).model_copy(update=changes))
        object.__setattr__(self, "home", self.home.resolve())

    # Directory layout under home: everything lambdapipe writes lives here (git-ignored).
    @property
    def lib_dir(self) -> Path:
        return (self.lib_home or self.home / "lib").resolve()

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def log_dir(self) -> Path:
        return self.home / "logs"

    @property
    def run_dir(self) -> Path:
        return self.home / "run"

    @property
    def conf_dir(self) -> Path:
        return self.home / "conf"


def as_environment(settings: Settings) -> dict[str, str]:
    """Every setting as the `LAMBDAPIPE_*` variables that rebuild `settings` in a child process.

    The whole object, not a chosen few: a setting left out would silently fall back to its
    default in the child. Ports are written already shifted, with `PORT_OFFSET=0`.
    """
    env: dict[str, str] = {}

    def put(name: str, value: object) -> None:
        if value is None:
            return
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        elif isinstance(value, bool):
            value = "true" if value else "false"
        env[f"LAMBDAPIPE_{name.upper()}"] = str(value)

    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if isinstance(value, BaseModel):
            for field in type(value).model_fields:
                put(f"{name}__{field}", getattr(value, field))
        else:
            put(name, value)
    env["LAMBDAPIPE_PORT_OFFSET"] = "0"
    return env


def secrets_file(home: Path) -> Path:
    return home / "secrets.env"


def ensure_local_secrets(home: Path) -> Path:
    """Create `<home>/secrets.env` with random passwords for the local stack, once."""
    path = secrets_file(home)
    existing: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            key, _, value = line.partition("=")
            if key:
                existing[key] = value
    missing = [f for f in SECRET_FIELDS if f"LAMBDAPIPE_{f}" not in existing]
    if missing:
        home.mkdir(parents=True, exist_ok=True)
        for field in missing:
            existing[f"LAMBDAPIPE_{field}"] = secrets.token_urlsafe(24)
        path.write_text("".join(f"{k}={v}\n" for k, v in sorted(existing.items())))
        path.chmod(0o600)
    return path


@cache
def get_settings() -> Settings:
    """Load settings once: environment first, then the local secrets file."""
    home = Path(os.environ.get("LAMBDAPIPE_HOME", ".lambdapipe")).resolve()
    profile = os.environ.get("LAMBDAPIPE_PROFILE", "local")
    env_file = ensure_local_secrets(home) if profile == "local" else secrets_file(home)
    return Settings(_env_file=env_file if env_file.exists() else None)
