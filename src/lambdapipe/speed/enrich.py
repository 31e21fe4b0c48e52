"""Enrichment with dimension state: the user's tier at processing time, `unknown` if absent."""

from __future__ import annotations

from typing import Final

import pyarrow as pa
import pyarrow.compute as pc

UNKNOWN_TIER: Final = "unknown"


def enrich_with_tier(rows: pa.Table, tiers: pa.Table) -> pa.Table:
    """`rows` (with `user_id`) plus `user_tier` from `tiers` (user_id, tier); never drops a row."""
    where = pc.index_in(rows.column("user_id"), value_set=tiers.column("user_id"))
    tier = pc.take(tiers.column("tier"), where)
    return rows.append_column("user_tier", pc.fill_null(tier, UNKNOWN_TIER))
