"""The one error type a user sees: what went wrong, what to do, and the log lines that tell why."""

from __future__ import annotations


class Problem(Exception):
    """An error the user can act on; the CLI prints it without a stack trace."""

    def __init__(self, message: str, hint: str = "", log_tail: str = "") -> None:
        super().__init__(message)
        self.hint = hint
        self.log_tail = log_tail
