"""`lambdapipe cdc`: the Debezium PostgreSQL connector on the Kafka Connect worker.

Configured as production teams run it: pgoutput, a publication limited to the dimension tables
(created by the migrations), a named replication slot, heartbeats so an idle slot does not hold
WAL, an initial snapshot, decimals as strings, keys = primary keys, deletes followed by
tombstones, and full history kept in the CDC topics (the batch layer rebuilds tier validity
intervals from them, so they are not compacted).
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg

from lambdapipe.errors import Problem
from lambdapipe.ingest.db import connect_debezium
from lambdapipe.settings import Settings

DEBEZIUM_POSTGRES = "io.debezium.connector.postgresql.PostgresConnector"
CONNECTOR = "lambdapipe-dims"
SLOT = "lambdapipe_dims"
PUBLICATION = "lambdapipe_dims"  # created by migrations/0001_dimensions.sql
TABLES = ("public.users", "public.products", "public.debezium_heartbeat")


def topic(settings: Settings, table: str) -> str:
    """The CDC topic of a table: `<prefix>.public.<table>`."""
    return f"{settings.kafka.cdc_topic_prefix}.public.{table}"


def connector_config(settings: Settings) -> dict[str, Any]:
    pg, k = settings.postgres, settings.kafka
    return {
        "name": CONNECTOR,
        "connector.class": DEBEZIUM_POSTGRES,
        "tasks.max": "1",
        "database.hostname": pg.host,
        "database.port": str(pg.port),
        "database.user": pg.debezium_user,
        "database.password": pg.debezium_password.get_secret_value(),
        "database.dbname": pg.app_database,
        "topic.prefix": k.cdc_topic_prefix,
        "plugin.name": "pgoutput",
        "slot.name": SLOT,
        "publication.name": PUBLICATION,
        # the publication exists (made by the tables' owner); never let Debezium alter it
        "publication.autocreate.mode": "disabled",
        "table.include.list": ",".join(TABLES),
        "snapshot.mode": "initial",
        "decimal.handling.mode": "string",
        "time.precision.mode": "connect",
        "tombstones.on.delete": "true",
        "heartbeat.interval.ms": "5000",
        "heartbeat.action.query": (
            "INSERT INTO debezium_heartbeat (id, beat_at) VALUES (1, now()) "
            "ON CONFLICT (id) DO UPDATE SET beat_at = EXCLUDED.beat_at"
        ),
        "key.converter": "org.apache.kafka.connect.json.JsonConverter",
        "key.converter.schemas.enable": "false",
        "value.converter": "org.apache.kafka.connect.json.JsonConverter",
        "value.converter.schemas.enable": "false",
        "topic.creation.default.partitions": str(k.partitions),
        "topic.creation.default.replication.factor": "-1",
        "topic.creation.default.cleanup.policy": "delete",
        "topic.creation.default.retention.ms": "-1",
        # larger batches and a shorter poll: Debezium's defaults (2,048 / 8,192 / 500 ms) cap a
        # single task well below what PostgreSQL commits
        "max.batch.size": "8192",
        "max.queue.size": "32768",
        "poll.interval.ms": "100",
        "producer.override.acks": "all",
        "producer.override.linger.ms": "5",
        "producer.override.batch.size": "262144",
        "producer.override.compression.type": "lz4",
    }


def redacted(config: dict[str, Any]) -> dict[str, Any]:
    """The connector configuration as it may be shown or logged: passwords masked."""
    return {k: ("********" if "password" in k else v) for k, v in config.items()}


def _without_secret(settings: Settings, text: str) -> str:
    """`text` (say, Connect's answer) with the Debezium password masked, should it be echoed."""
    return text.replace(settings.postgres.debezium_password.get_secret_value(), "********")


def _connect_api(settings: Settings, method: str, path: str, **kwargs: Any) -> httpx.Response:
    url = f"{settings.connect.endpoint}{path}"
    try:
        return httpx.request(method, url, timeout=60, **kwargs)
    except httpx.HTTPError as exc:
        raise Problem(
            f"Kafka Connect does not answer at {settings.connect.endpoint}: {exc}",
            hint="is the stack up (`lambdapipe up`)? is LAMBDAPIPE_CONNECT__URL right?",
        ) from exc


def register(settings: Settings) -> dict[str, Any]:
    """Create or update the connector (idempotent); its configuration, passwords masked.

    Checks the database first, clearly.
    """
    with connect_debezium(settings) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_publication_tables WHERE pubname = %s", (PUBLICATION,)
        ).fetchone()
        if not row or row[0] == 0:
            raise Problem(
                f"publication {PUBLICATION} is missing or empty",
                hint="load the dimensions first: `lambdapipe dims load`",
            )
    config = connector_config(settings)
    validation = _connect_api(
        settings,
        "PUT",
        f"/connector-plugins/{DEBEZIUM_POSTGRES.rsplit('.', 1)[-1]}/config/validate",
        json=config,
    )
    if validation.status_code == 200 and validation.json().get("error_count", 0):
        errors = [
            f"{c['value']['name']}: {'; '.join(c['value']['errors'])}"
            for c in validation.json()["configs"]
            if c["value"]["errors"]
        ]
        invalid = _without_secret(settings, " | ".join(errors))
        raise Problem(f"the connector configuration is invalid: {invalid}")
    response = _connect_api(settings, "PUT", f"/connectors/{CONNECTOR}/config", json=config)
    if response.status_code not in (200, 201):
        answer = _without_secret(settings, response.text[:500])
        raise Problem(f"registering {CONNECTOR} failed: {answer}")
    # Connect echoes the configuration back, password included: callers get it masked
    registered = dict(response.json())
    registered["config"] = redacted(dict(registered.get("config", {})))
    return registered


@dataclass(frozen=True)
class CdcStatus:
    connector: str
    connector_state: str
    tasks: list[dict[str, str]]
    slot_active: bool | None
    slot_lag_bytes: int | None


def slot_lag(settings: Settings) -> tuple[bool, int] | None:
    """(active, bytes of WAL the slot still holds) or None when the slot does not exist."""
    with connect_debezium(settings) as conn:
        row = conn.execute(
            "SELECT active, pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint "
            "FROM pg_replication_slots WHERE slot_name = %s",
            (SLOT,),
        ).fetchone()
    return (bool(row[0]), int(str(row[1] or 0))) if row else None


def status(settings: Settings) -> CdcStatus:
    response = _connect_api(settings, "GET", f"/connectors/{CONNECTOR}/status")
    if response.status_code == 404:
        state, tasks = "NOT REGISTERED", []
    else:
        body = response.json()
        state = body["connector"]["state"]
        tasks = [
            {"id": str(t["id"]), "state": t["state"], "trace": t.get("trace", "")[:300]}
            for t in body["tasks"]
        ]
    lag = None
    with contextlib.suppress(psycopg.Error):
        lag = slot_lag(settings)
    return CdcStatus(CONNECTOR, state, tasks, lag[0] if lag else None, lag[1] if lag else None)


def unregister(settings: Settings, drop_slot: bool = True) -> bool:
    """Delete the connector and (by default) its replication slot, so no WAL is held."""
    response = _connect_api(settings, "DELETE", f"/connectors/{CONNECTOR}")
    existed = response.status_code in (200, 204)
    if drop_slot:
        with connect_debezium(settings) as conn:
            for _ in range(50):  # the slot stays active for a moment after the task stops
                row = conn.execute(
                    "SELECT active FROM pg_replication_slots WHERE slot_name = %s", (SLOT,)
                ).fetchone()
                if row is None:
                    break
                if not row[0]:
                    conn.execute("SELECT pg_drop_replication_slot(%s)", (SLOT,))
                    break
                time.sleep(0.2)
    return existed
