"""Native record checks, configured from the rules lambdapipe compiles from its schemas.

Built from `native/` (Rust, PyO3). `lambdapipe.contracts.native` writes the configuration.
"""

from typing import Any

class Validator:
    """Answers "is this raw record valid?" for the record kinds of a JSON configuration."""

    def __init__(self, config: str) -> None:
        """Build the checks; ValueError names what the configuration gets wrong."""

    @property
    def kinds(self) -> list[str]:
        """The kind names, in the order their numbers refer to."""

    def check(self, kind: int, raw: object, limit: str) -> bool:
        """Whether `raw` (bytes) is a valid record of kind number `kind`, event time <= `limit`."""

    def parse(self, kind: int, raw: object, limit: str) -> dict[str, Any] | None:
        """`check`, returning the record as `orjson.loads` would when valid, else None.

        None also for a valid record holding a nested array or object (not built natively).
        """
