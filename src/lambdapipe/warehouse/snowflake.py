"""The warehouse in Snowflake (the cluster profile), through snowflake-connector-python.

A load writes the rows as one Parquet file, PUTs it on a temporary stage, then deletes the
day and COPYs the file in one transaction (the stage is created before it: DDL commits in
Snowflake). Tested against a local fakesnow server, which speaks the same protocol.
"""

from __future__ import annotations

import tempfile
import uuid
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from lambdapipe.errors import Problem
from lambdapipe.settings import WarehouseSettings
from lambdapipe.warehouse.base import Warehouse
from lambdapipe.warehouse.raw import SCHEMA

STAGE = "lambdapipe_raw_load"


def connect_arguments(settings: WarehouseSettings) -> dict[str, Any]:
    """snowflake.connector.connect's arguments for these settings (the password included)."""
    args: dict[str, Any] = {
        "account": settings.snowflake_account,
        "user": settings.snowflake_user,
        "password": settings.snowflake_password.get_secret_value(),
        "database": settings.snowflake_database,
        "schema": SCHEMA,
        "application": "lambdapipe",
        "session_parameters": {"TIMEZONE": "UTC"},
    }
    if settings.snowflake_warehouse:
        args["warehouse"] = settings.snowflake_warehouse
    if settings.snowflake_role:
        args["role"] = settings.snowflake_role
    if settings.snowflake_host:
        args.update(
            host=settings.snowflake_host,
            port=settings.snowflake_port,
            protocol=settings.snowflake_protocol,
        )
    return args


class SnowflakeWarehouse(Warehouse):
    """RAW in the `raw` schema of one Snowflake database; dbt builds STAGING and MARTS."""

    dialect = "snowflake"

    def __init__(self, settings: WarehouseSettings) -> None:
        self.settings = settings
        self._conn: Any = None

    @property
    def location(self) -> str:
        return f"snowflake://{self.settings.snowflake_account}/{self.settings.snowflake_database}"

    def connect(self) -> None:
        import snowflake.connector

        if self._conn is not None:
            return
        if not (self.settings.snowflake_account and self.settings.snowflake_user):
            raise Problem(
                "the Snowflake warehouse has no account or user",
                hint="set LAMBDAPIPE_WAREHOUSE__SNOWFLAKE_ACCOUNT, _USER and _PASSWORD",
            )
        try:
            self._conn = snowflake.connector.connect(**connect_arguments(self.settings))
        except snowflake.connector.errors.Error as exc:
            raise Problem(
                f"cannot connect to Snowflake account {self.settings.snowflake_account!r}: "
                f"{exc.msg}",
                hint="check the LAMBDAPIPE_WAREHOUSE__SNOWFLAKE_* settings",
            ) from None
        with self._conn.cursor() as cursor:
            for statement in self.raw_ddl():
                cursor.execute(statement)

    @property
    def conn(self) -> Any:
        if self._conn is None:
            self.connect()
        return self._conn

    def execute(self, sql: str) -> None:
        with self.conn.cursor() as cursor:
            cursor.execute(sql)

    def _replace_day(
        self, name: str, day_column: str, day: date, rows: pa.RecordBatchReader
    ) -> None:
        with tempfile.TemporaryDirectory(prefix="lambdapipe-raw-") as tmp:
            # a new name per load: COPY skips a file name it loaded before (FORCE below as well)
            path = Path(tmp) / f"{name}-{day.isoformat()}-{uuid.uuid4().hex}.parquet"
            written = 0
            with pq.ParquetWriter(path, rows.schema) as parquet:
                for batch in rows:
                    parquet.write_batch(batch)
                    written += batch.num_rows
            with self.conn.cursor() as cursor:
                cursor.execute(f"CREATE TEMPORARY STAGE IF NOT EXISTS {STAGE}")
                cursor.execute(
                    f"PUT 'file://{path.as_posix()}' @{STAGE} AUTO_COMPRESS=FALSE OVERWRITE=TRUE"
                )
                try:
                    cursor.execute("BEGIN")
                    cursor.execute(f"DELETE FROM {name} WHERE {day_column} = %s", (day,))  # noqa: S608
                    if written:
                        cursor.execute(
                            f"COPY INTO {name} FROM @{STAGE}/{path.name} "
                            "FILE_FORMAT = (TYPE = PARQUET) "
                            "MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE PURGE = TRUE FORCE = TRUE"
                        )
                    cursor.execute("COMMIT")
                except Exception:
                    cursor.execute("ROLLBACK")
                    raise

    def query_arrow(self, sql: str) -> pa.Table:
        with self.conn.cursor() as cursor:
            cursor.execute(sql)
            table: pa.Table = cursor.fetch_arrow_all(force_return_table=True)
        return table.rename_columns([c.lower() for c in table.column_names])

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
