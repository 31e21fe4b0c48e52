"""Connections to the shop database, as the app role (owner) or as the Debezium role."""

from __future__ import annotations

import psycopg

from lambdapipe.errors import Problem
from lambdapipe.settings import Settings


def connect_app(
    settings: Settings, autocommit: bool = False
) -> psycopg.Connection[tuple[object, ...]]:
    """A connection to the shop database as its owner; a clear error when it cannot be had."""
    pg = settings.postgres
    return _connect(settings, pg.app_user, pg.app_password.get_secret_value(), autocommit)


def connect_debezium(settings: Settings) -> psycopg.Connection[tuple[object, ...]]:
    pg = settings.postgres
    return _connect(settings, pg.debezium_user, pg.debezium_password.get_secret_value(), True)


def _connect(
    settings: Settings, user: str, password: str, autocommit: bool
) -> psycopg.Connection[tuple[object, ...]]:
    pg = settings.postgres
    try:
        return psycopg.connect(
            host=pg.host,
            port=pg.port,
            user=user,
            password=password,
            dbname=pg.app_database,
            connect_timeout=5,
            autocommit=autocommit,
        )
    except psycopg.OperationalError as exc:
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        where = f"{pg.host}:{pg.port}/{pg.app_database}"
        raise Problem(
            f"cannot connect to PostgreSQL {where} as {user}: {reason}",
            hint="is the stack up (`lambdapipe up`)? are LAMBDAPIPE_POSTGRES__* right?",
        ) from exc
