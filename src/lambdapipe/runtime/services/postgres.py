"""PostgreSQL 15+: own data dir, logical WAL for Debezium, a role and database per concern."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
from pathlib import Path

import psycopg
from psycopg import sql

from lambdapipe.errors import Problem
from lambdapipe.runtime.services.base import Service, write_if_changed


def postgres_bindir() -> Path:
    """The newest PostgreSQL >= 15 server binaries on this machine."""
    if override := os.environ.get("LAMBDAPIPE_POSTGRES_BINDIR"):
        return Path(override)
    candidates = sorted(
        (p for p in Path("/usr/lib/postgresql").glob("*/bin") if (p / "postgres").exists()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    for bindir in reversed(candidates):
        if bindir.parent.name.isdigit() and int(bindir.parent.name) >= 15:
            return bindir
    if found := shutil.which("postgres"):
        return Path(found).parent
    raise Problem("PostgreSQL 15+ server binaries not found", hint="run `make setup`")


class Postgres(Service):
    name = "postgres"
    # SIGINT is PostgreSQL's "fast shutdown": SIGTERM would wait for every client to leave.
    stop_signal = signal.SIGINT

    @property
    def ports(self) -> list[int]:
        return [self.settings.postgres.port]

    @property
    def socket_dir(self) -> Path:
        return self.settings.run_dir / "postgres"

    def user(self) -> str | None:
        # PostgreSQL refuses to run as root: run it as the `postgres` account instead.
        return "postgres" if os.geteuid() == 0 else None

    def _chown(self, path: Path) -> None:
        if (account := self.user()) is not None:
            entry = pwd.getpwnam(account)
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def prepare(self) -> None:
        cfg = self.settings.postgres
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        self._chown(self.socket_dir)
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()
        write_if_changed(
            self.data_dir / "lambdapipe.conf",
            "\n".join(
                [
                    "listen_addresses = '127.0.0.1'",
                    f"port = {cfg.port}",
                    f"unix_socket_directories = '{self.socket_dir}'",
                    "wal_level = logical",
                    # `dims churn --log` reads each tier move's commit time back (Debezium's ts_ms)
                    "track_commit_timestamp = on",
                    "max_replication_slots = 10",
                    "max_wal_senders = 10",
                    # bounds the WAL an abandoned replication slot can hold on disk
                    "max_slot_wal_keep_size = '4GB'",
                    "shared_buffers = '128MB'",
                    "max_connections = 100",
                    "logging_collector = off",
                    "log_min_messages = warning",
                ]
            )
            + "\n",
        )
        write_if_changed(
            self.data_dir / "pg_hba.conf",
            "\n".join(
                [
                    "# TYPE  DATABASE     USER  ADDRESS       METHOD",
                    "local   all          all                 scram-sha-256",
                    "host    all          all   127.0.0.1/32  scram-sha-256",
                    f"host    replication  {cfg.debezium_user}  127.0.0.1/32  scram-sha-256",
                ]
            )
            + "\n",
        )
        for name in ("lambdapipe.conf", "pg_hba.conf"):
            self._chown(self.data_dir / name)

    def _initdb(self) -> None:
        cfg = self.settings.postgres
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.chmod(0o700)
        self._chown(self.data_dir)
        pwfile = self.settings.run_dir / "postgres-initdb.pw"
        pwfile.write_text(cfg.admin_password.get_secret_value() + "\n")
        pwfile.chmod(0o600)
        self._chown(pwfile)
        try:
            result = subprocess.run(  # noqa: S603
                [
                    str(postgres_bindir() / "initdb"),
                    "-D",
                    str(self.data_dir),
                    f"--username={cfg.admin_user}",
                    f"--pwfile={pwfile}",
                    "--auth=scram-sha-256",
                    "--encoding=UTF8",
                    "--locale=C",
                ],
                capture_output=True,
                text=True,
                user=self.user(),
                check=False,
            )
        finally:
            pwfile.unlink(missing_ok=True)
        if result.returncode != 0:
            raise Problem("initdb failed", log_tail=result.stdout + result.stderr)
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.write("\ninclude_if_exists = 'lambdapipe.conf'\n")

    def argv(self) -> list[str]:
        return [str(postgres_bindir() / "postgres"), "-D", str(self.data_dir)]

    def connect(self, dbname: str = "postgres") -> psycopg.Connection[tuple[object, ...]]:
        cfg = self.settings.postgres
        return psycopg.connect(
            host=cfg.host,
            port=cfg.port,
            user=cfg.admin_user,
            password=cfg.admin_password.get_secret_value(),
            dbname=dbname,
            connect_timeout=3,
            autocommit=True,
        )

    def ready(self) -> bool:
        with contextlib.suppress(psycopg.Error), self.connect() as conn:
            return conn.execute("SELECT 1").fetchone() == (1,)
        return False

    def bootstrap(self) -> None:
        """Roles and databases: the app owns `shop`, Debezium may only replicate and read."""
        cfg = self.settings.postgres
        roles = [
            (cfg.app_user, cfg.app_password, ""),
            (cfg.debezium_user, cfg.debezium_password, "REPLICATION"),
            (cfg.catalog_user, cfg.catalog_password, ""),
            (cfg.registry_user, cfg.registry_password, ""),
        ]
        databases = [
            (cfg.app_database, cfg.app_user),
            (cfg.catalog_database, cfg.catalog_user),
            (cfg.registry_database, cfg.registry_user),
        ]
        with self.connect() as conn:
            for role, password, extra in roles:
                exists = conn.execute(
                    "SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)
                ).fetchone()
                verb = "ALTER" if exists else "CREATE"
                conn.execute(
                    sql.SQL("{} ROLE {} LOGIN {} PASSWORD {}").format(
                        sql.SQL(verb),
                        sql.Identifier(role),
                        sql.SQL(extra),
                        sql.Literal(password.get_secret_value()),
                    )
                )
            for database, owner in databases:
                exists = conn.execute(
                    "SELECT 1 FROM pg_database WHERE datname = %s", (database,)
                ).fetchone()
                if not exists:
                    conn.execute(
                        sql.SQL("CREATE DATABASE {} OWNER {}").format(
                            sql.Identifier(database), sql.Identifier(owner)
                        )
                    )
        with self.connect(cfg.app_database) as conn:
            conn.execute(
                sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
                    sql.Identifier(cfg.app_database), sql.Identifier(cfg.debezium_user)
                )
            )
            # Debezium reads every table the app creates, and nothing else.
            conn.execute(
                sql.SQL(
                    "ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA public "
                    "GRANT SELECT ON TABLES TO {}"
                ).format(sql.Identifier(cfg.app_user), sql.Identifier(cfg.debezium_user))
            )
            conn.execute(
                sql.SQL("ALTER SCHEMA public OWNER TO {}").format(sql.Identifier(cfg.app_user))
            )
