"""The audit log: one JSON line per request to the API and the store endpoint, rotated.

Each line says who (the store user, `api` for the API token, null when nobody signed in), with
which role, when, the route, the statement (truncated), the rows returned, whether it was allowed
and the HTTP status. It never holds a credential: no header and no URL parameter is written.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from logging.handlers import RotatingFileHandler
from pathlib import Path
from typing import Final

import orjson

STATEMENT_CHARS: Final = 500
BACKUPS: Final = 5


@dataclass
class AuditEntry:
    """One request, filled in while it is handled."""

    at: str
    method: str
    route: str
    who: str | None = None
    role: str | None = None
    statement: str | None = None
    rows: int | None = None
    allowed: bool = True
    status: int = 0
    reason: str | None = None

    @classmethod
    def begin(cls, method: str, route: str) -> AuditEntry:
        return cls(
            at=datetime.now(UTC).isoformat(timespec="milliseconds"), method=method, route=route
        )

    def statement_of(self, sql: str) -> None:
        self.statement = sql if len(sql) <= STATEMENT_CHARS else sql[:STATEMENT_CHARS] + "..."


class AuditLog:
    """Writes `AuditEntry` lines to `path` (none: to nowhere), rotating at `max_bytes`."""

    def __init__(self, path: Path | None, max_bytes: int = 10_000_000) -> None:
        # a logger of its own, outside logging's tree: nothing else writes here, nor reads it
        self._logger = logging.Logger("lambdapipe.audit", logging.INFO)
        self.path = path
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            handler = RotatingFileHandler(
                path, maxBytes=max_bytes, backupCount=BACKUPS, encoding="utf-8"
            )
            self._logger.addHandler(handler)

    def write(self, entry: AuditEntry) -> None:
        self._logger.info(orjson.dumps(asdict(entry)).decode())

    def close(self) -> None:
        for handler in list(self._logger.handlers):
            handler.close()
            self._logger.removeHandler(handler)
