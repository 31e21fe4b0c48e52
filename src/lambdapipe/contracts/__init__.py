"""Data contracts: the JSON Schemas in `schemas/` and everything derived from them.

The schemas are the single source of truth. This package compiles them once at import time into
field rules, and derives from those rules the validator (a native check configured from them,
plus the ordered Python rules that name a rejection's reason), Spark `StructType`s and
ClickHouse column types.

This package exports the Python validator; the Spark artifacts live in
`lambdapipe.contracts.spark` (importing PySpark) and the ClickHouse columns in
`lambdapipe.contracts.clickhouse`. See docs/data-model.md.
"""

from lambdapipe.contracts.reasons import Reason
from lambdapipe.contracts.validate import (
    DEFAULT_LIMITS,
    Limits,
    ValidationResult,
    validate_event,
    validate_transaction,
)

__all__ = [
    "DEFAULT_LIMITS",
    "Limits",
    "Reason",
    "ValidationResult",
    "validate_event",
    "validate_transaction",
]
