"""Versioned, idempotent schema migrations for the shop database.

Each `migrations/NNNN_name.sql` runs once, in order, in its own transaction, as the app role;
`schema_migrations` records the version and a checksum, and a changed file that was already
applied is an error (migrations are append-only).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib.resources import files

from psycopg import sql

from lambdapipe.errors import Problem
from lambdapipe.ingest.db import connect_app
from lambdapipe.settings import Settings

# Serialises concurrent `migrate` calls (any constant, the same for every caller).
MIGRATION_LOCK = 7_400_001


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def migrations() -> list[Migration]:
    """The migrations shipped with lambdapipe, in version order."""
    found = []
    for entry in files("lambdapipe.ingest").joinpath("migrations").iterdir():
        if entry.name.endswith(".sql"):
            version, _, name = entry.name.removesuffix(".sql").partition("_")
            found.append(Migration(int(version), name, entry.read_text()))
    return sorted(found, key=lambda m: m.version)


def migrate(settings: Settings) -> list[str]:
    """Apply pending migrations and the Debezium role's grants; return the names applied."""
    applied_now = []
    with connect_app(settings) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done: dict[int, str] = {
            int(str(v)): str(c)
            for v, c in conn.execute("SELECT version, checksum FROM schema_migrations")
        }
        conn.commit()
        for migration in migrations():
            if migration.version in done:
                if done[migration.version] != migration.checksum:
                    raise Problem(
                        f"migration {migration.version}_{migration.name} changed after it was "
                        "applied",
                        hint="add a new migration instead of editing an applied one",
                    )
                continue
            with conn.transaction():
                conn.execute(migration.sql.encode())
                conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                    (migration.version, migration.name, migration.checksum),
                )
            applied_now.append(f"{migration.version:04d}_{migration.name}")
        # Debezium reads the dimensions and writes only its heartbeat.
        role = sql.Identifier(settings.postgres.debezium_user)
        conn.execute(
            sql.SQL("GRANT SELECT ON users, products, debezium_heartbeat TO {}").format(role)
        )
        conn.execute(sql.SQL("GRANT INSERT, UPDATE ON debezium_heartbeat TO {}").format(role))
        conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))
        conn.commit()
    return applied_now
