"""The role rules on the real engine: what a reader and the writer may run on the store."""

from __future__ import annotations

import pytest

from lambdapipe.serving.embedded import EmbeddedStore
from lambdapipe.serving.guard import Role, check_statement
from lambdapipe.serving.store import Refused, StoreError

# Reach files, URLs, object stores, other servers or databases, or run programs.
OUTSIDE = [
    "SELECT * FROM file('/etc/hostname', 'LineAsString')",
    "SELECT file('/etc/hostname')",
    "WITH file('/etc/hostname') AS f SELECT f",
    "SELECT * FROM url('http://127.0.0.1:1/', CSV, 'a String')",
    "SELECT * FROM s3('http://127.0.0.1:1/b/k.csv', CSV, 'a String')",
    "SELECT * FROM remote('127.0.0.1:1', system.one)",
    "SELECT * FROM mysql('127.0.0.1:1', 'db', 't', 'u', 'p')",
    "SELECT * FROM postgresql('127.0.0.1:1', 'db', 't', 'u', 'p')",
    "SELECT * FROM hdfs('hdfs://127.0.0.1:1/f', CSV, 'a String')",
    "SELECT * FROM executable('x.sh', CSV, 'a String')",
    "SELECT * FROM loop(file('/etc/hostname', 'LineAsString'))",
    "SELECT count() FROM user_events_realtime WHERE user_id IN (SELECT * FROM url('http://x/'))",
    "INSERT INTO FUNCTION file('out.csv', CSV) SELECT 1",
    "CREATE TABLE leak (a String) ENGINE = File(CSV)",
    "CREATE TABLE leak (a String) ENGINE = URL('http://127.0.0.1:1/', CSV)",
    "CREATE TABLE leak ENGINE = Memory AS SELECT * FROM url('http://127.0.0.1:1/', CSV)",
    "CREATE DICTIONARY d (k UInt64, v String) PRIMARY KEY k "
    "SOURCE(FILE(path '/etc/hostname' format 'TSV')) LAYOUT(FLAT()) LIFETIME(0)",
    "CREATE DICTIONARY d (k UInt64, v String) PRIMARY KEY k "
    "SOURCE(CLICKHOUSE(host '127.0.0.1' port 1 table 't')) LAYOUT(FLAT()) LIFETIME(0)",
]
# A reader's refusals on top: writes, DDL, settings.
WRITES = [
    "INSERT INTO dead_letters_realtime (raw) SELECT 'x'",
    "CREATE TABLE x (a Int32) ENGINE = MergeTree ORDER BY a",
    "ALTER TABLE user_events_realtime DELETE WHERE 1",
    "DELETE FROM user_events_realtime WHERE 1",
    "TRUNCATE TABLE user_events_realtime",
    "DROP TABLE user_events_realtime",
    "OPTIMIZE TABLE user_events_realtime FINAL",
    "RENAME TABLE user_events_realtime TO gone",
    "SET readonly = 0",
    "SELECT 1 SETTINGS readonly = 0",
    "SELECT * FROM (SELECT 1 SETTINGS max_threads = 1)",
]
# Refused for the writer too: shared session settings and server administration.
ADMIN = [
    "SET max_threads = 1",
    "SYSTEM FLUSH LOGS",
    "KILL QUERY WHERE 1",
    "EXPLAIN SELECT 1",
    "ATTACH TABLE attached (a Int32) ENGINE = MergeTree ORDER BY a",
]


def count(store: EmbeddedStore) -> int:
    return int(store.query_rows("SELECT count() AS n FROM user_events_realtime")[0]["n"])


@pytest.mark.parametrize("role", ["reader", "writer"])
@pytest.mark.parametrize("sql", OUTSIDE)
def test_nobody_reaches_outside(store: EmbeddedStore, role: Role, sql: str) -> None:
    with pytest.raises(Refused, match="reach files, URLs or other databases"):
        check_statement(store, sql, None, role, store.outside_names)


@pytest.mark.parametrize("sql", WRITES + ADMIN)
def test_a_reader_only_selects(store: EmbeddedStore, sql: str) -> None:
    with pytest.raises(Refused, match=r"only SELECT|settings"):
        check_statement(store, sql, None, "reader", store.outside_names)


@pytest.mark.parametrize("sql", ADMIN)
def test_the_writer_does_not_administer(store: EmbeddedStore, sql: str) -> None:
    with pytest.raises(Refused, match="not allowed"):
        check_statement(store, sql, None, "writer", store.outside_names)


@pytest.mark.parametrize("sql", WRITES[:-3])
def test_the_writer_writes(store: EmbeddedStore, sql: str) -> None:
    checked = check_statement(store, sql, None, "writer", store.outside_names)
    assert checked.statement.split(" ")[0] == sql.split(" ")[0]


def test_a_reader_reads_under_readonly_with_its_format(store: EmbeddedStore) -> None:
    checked = check_statement(
        store, "select count() as n from user_events_realtime format JSONEachRow", None,
        "reader", store.outside_names,
    )  # fmt: skip
    assert checked.output_format == "JSONEachRow"
    assert checked.statement.endswith("SETTINGS readonly = 1")
    assert store.query_bytes(checked.statement, "JSONEachRow", {}) == b'{"n":0}\n'


def test_readonly_is_the_engine_s_own_check(store: EmbeddedStore) -> None:
    """What the rules let through still runs under readonly = 1: the engine refuses writes."""
    with pytest.raises(StoreError, match="readonly"):
        store.execute("INSERT INTO dead_letters_realtime (raw) SETTINGS readonly = 1 VALUES ('x')")


def test_harmless_table_functions_and_names_pass(store: EmbeddedStore) -> None:
    for sql in ["SELECT format('{}-{}', 1, 2)", "SELECT log(2)", "SELECT 'file', 'url' AS s3"]:
        check_statement(store, sql, None, "reader", store.outside_names)
    check_statement(store, "SELECT * FROM numbers(3)", None, "writer", store.outside_names)


def test_one_statement_only(store: EmbeddedStore) -> None:
    before = count(store)
    with pytest.raises(StoreError, match="Multi-statements"):
        check_statement(
            store, "SELECT 1; TRUNCATE TABLE user_events_realtime", None, "writer",
            store.outside_names,
        )  # fmt: skip
    assert count(store) == before


def test_the_outside_list_comes_from_the_engine(store: EmbeddedStore) -> None:
    names = store.outside_names
    assert {"file", "url", "s3", "remote", "mysql", "postgresql", "hdfs", "executable"} <= names
    assert {"numbers", "values", "format", "mergetree", "replacingmergetree", "memory"}.isdisjoint(
        names
    )
