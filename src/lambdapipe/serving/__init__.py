"""Serving layer: the realtime ClickHouse store, its query API and the live dashboard.

The store a process uses comes from `lambdapipe.resources.Resources(settings).store()`.
"""

from __future__ import annotations

from lambdapipe.serving.store import ServingStore

__all__ = ["ServingStore"]
