"""What each role may run on the store: the engine parses, these rules judge its parse tree.

ClickHouse itself normalizes the statement (`formatQuerySingleLine`, one statement only) and
describes it (`EXPLAIN AST`); what runs is that normalized text, so what is judged is what runs.

- Everyone: no function, table function or table engine that reaches files, URLs, object stores
  or other databases (`file`, `url`, `s3`, `remote`, `mysql`, `postgresql`, `hdfs`, `executable`,
  ...): every name ClickHouse lists in `system.table_functions` and `system.table_engines` except
  the few that stay inside this engine's tables or make rows up (`CONTAINED`). The scalar
  `file()` shares the table function's name, and `readonly = 1` does not stop it (measured), so
  it is refused by name too.
- Readers: SELECT only, no `SETTINGS` clause, and the query runs under `readonly = 1`, which
  the engine enforces (it refuses writes, DDL and setting changes itself).
- The writer: SELECT, INSERT and the DDL the pipeline needs; never `SET` (the embedded engine's
  settings are shared by every client), `SYSTEM`, `BACKUP` or user management.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

from lambdapipe.serving.store import Params, Refused, ServingStore, StoreError

Role = Literal["writer", "reader"]

READ_KINDS: Final = frozenset({"SelectWithUnionQuery", "SelectIntersectExceptQuery"})
WRITE_KINDS: Final = READ_KINDS | {
    "InsertQuery",
    "CreateQuery",
    "AlterQuery",
    "DeleteQuery",
    "DropQuery",
    "TruncateQuery",
    "OptimizeQuery",
    "Rename",
    "DescribeQuery",
    "ShowTables",
    "ExistsTableQuery",
}
# Table functions and engines (lower case) that read only this engine's own tables or make up
# rows; every MergeTree engine too. Anything else ClickHouse lists is refused, new ones included.
CONTAINED: Final = frozenset(
    {
        "numbers", "numbers_mt", "zeros", "zeros_mt", "generate_series", "generateseries",
        "primes", "values", "sqlstandardvalues", "null", "view", "viewifpermitted", "format",
        "merge", "loop", "generaterandom", "memory", "log", "tinylog", "stripelog", "set",
        "join", "buffer", "materializedview", "alias",
    }
)  # fmt: skip
_FUNCTION: Final = re.compile(r"^\s*Function(?:WithKeyValueArguments)?\s+(\w+)", re.MULTILINE)
_SETTINGS: Final = re.compile(r"^\s*Set$", re.MULTILINE)
_DICTIONARY: Final = re.compile(r"^\s*Dictionary definition", re.MULTILINE)
_FORMAT: Final = re.compile(r"\s+FORMAT\s+(\w+)$")


@dataclass(frozen=True)
class Checked:
    """A statement that passed: the text to run, and the output format it named, if any."""

    statement: str
    output_format: str | None


def outside_names(store: ServingStore) -> frozenset[str]:
    """Every table function and table engine of this ClickHouse that reaches outside it."""
    rows = store.query_rows(
        "SELECT lower(name) AS name FROM system.table_functions"
        " UNION ALL SELECT lower(name) AS name FROM system.table_engines"
    )
    names = {str(row["name"]) for row in rows}
    return frozenset(n for n in names if n not in CONTAINED and not n.endswith("mergetree"))


def judge(kind: str, ast: str, role: Role, outside: frozenset[str]) -> None:
    """Raise `Refused` unless `role` may run a statement of `kind` with parse tree `ast`."""
    reached = sorted({name for name in _FUNCTION.findall(ast) if name.lower() in outside})
    # a dictionary's source may be another server or a URL under a name no list holds
    # (CLICKHOUSE, HTTP): the pipeline creates none, so none is created
    if _DICTIONARY.search(ast):
        reached.append("CREATE DICTIONARY")
    if reached:
        raise Refused(
            f"{', '.join(reached)}: functions and engines that reach files, URLs or other "
            "databases are refused on this endpoint"
        )
    if role == "reader":
        if kind not in READ_KINDS:
            raise Refused(f"a reader may run only SELECT queries, not {kind or 'nothing'}")
        if _SETTINGS.search(ast):
            raise Refused("a reader may not change settings (SETTINGS clause)")
    elif kind not in WRITE_KINDS:
        raise Refused(f"{kind or 'nothing'} is not allowed on this endpoint")


def check_statement(
    store: ServingStore, sql: str, params: Params | None, role: Role, outside: frozenset[str]
) -> Checked:
    """The one statement in `sql`, as ClickHouse normalized it, if `role` may run it.

    A reader's SELECT comes back wrapped to run under `readonly = 1`. Raises `Refused`, or
    `StoreError` when ClickHouse cannot parse the text.
    """
    try:
        formatted = store.query_rows("SELECT formatQuerySingleLine({q:String}) AS q", {"q": sql})
    except StoreError as exc:
        raise StoreError(f"cannot parse the query: {exc}") from exc
    statement = str(formatted[0]["q"])
    lines = store.query_rows(f"EXPLAIN AST {statement}", params)
    ast = "\n".join(str(next(iter(line.values()))) for line in lines)
    kind = ast.split(" ", 1)[0].split("\n", 1)[0]
    if statement.startswith("ATTACH"):
        # parsed as a CreateQuery, but it may read a table's data from a path on disk
        kind = "AttachQuery"
    judge(kind, ast, role, outside)
    output = _FORMAT.search(statement)
    if output:
        statement = statement[: output.start()]
    if role == "reader":
        statement = f"SELECT * FROM ({statement}) SETTINGS readonly = 1"  # noqa: S608
    return Checked(statement, output[1] if output else None)
