"""Serving layer: the realtime ClickHouse store, its query API and the live dashboard."""

from __future__ import annotations

from pathlib import Path

from lambdapipe.serving.store import ServingStore
from lambdapipe.settings import Settings


def data_dir(settings: Settings) -> Path:
    """The chdb data directory of the embedded store."""
    return (settings.serving.data_dir or settings.data_dir / "serving").resolve()


def open_store(settings: Settings, *, owner: bool = False) -> ServingStore:
    """The store this process should use, chosen by settings.

    `owner=True` (only `lambdapipe serve`) opens the embedded engine on its data directory;
    everyone else talks HTTP, to the ClickHouse server or to the serve process.
    """
    serving = settings.serving
    if serving.backend == "embedded" and owner:
        from lambdapipe.serving.embedded import EmbeddedStore

        return EmbeddedStore(data_dir(settings))
    from lambdapipe.serving.http import HttpStore

    if serving.backend == "server":
        return HttpStore(
            serving.server_url,
            serving.server_user,
            serving.server_password,
            serving.database,
            serving.query_timeout_s,
        )
    return HttpStore(serving.store_url, timeout_s=serving.query_timeout_s)


__all__ = ["ServingStore", "data_dir", "open_store"]
