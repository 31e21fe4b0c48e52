"""Business rules the schemas cannot express, written once as tiny expressions.

Each rule is a comparison over decimal arithmetic on fields. The Python validator evaluates it
with `Decimal` (exact) and the Spark validator translates it to a Column with DecimalType, so
both apply the same rule.
"""

from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

Op = Literal["+", "-", "*"]
Cmp = Literal[">", ">=", "=="]


@dataclass(frozen=True, slots=True)
class Field:
    """The decimal value of a field (money string or integer)."""

    name: str


@dataclass(frozen=True, slots=True)
class Const:
    """A decimal literal."""

    value: Decimal


@dataclass(frozen=True, slots=True)
class BinOp:
    """Exact decimal arithmetic."""

    op: Op
    left: "Expr"
    right: "Expr"


Expr = Field | Const | BinOp


@dataclass(frozen=True, slots=True)
class Rule:
    """`left cmp right` must hold for every valid record of `record`; `name` is the DLQ detail."""

    record: str
    name: str
    cmp: Cmp
    left: Expr
    right: Expr


ZERO = Const(Decimal("0.00"))

RULES: tuple[Rule, ...] = (
    Rule("purchase", "purchase.amount_positive", ">", Field("amount"), ZERO),
    Rule("checkout_start", "checkout_start.cart_value_positive", ">", Field("cart_value"), ZERO),
    Rule("transaction", "transaction.unit_price_positive", ">", Field("unit_price"), ZERO),
    Rule("transaction", "transaction.discount_not_negative", ">=", Field("discount_amount"), ZERO),
    Rule("transaction", "transaction.tax_not_negative", ">=", Field("tax_amount"), ZERO),
    Rule(
        "transaction",
        "transaction.total_amount",
        "==",
        Field("total_amount"),
        BinOp(
            "+",
            BinOp(
                "-", BinOp("*", Field("unit_price"), Field("quantity")), Field("discount_amount")
            ),
            Field("tax_amount"),
        ),
    ),
)


def rules_for(record: str) -> tuple[Rule, ...]:
    """Return the business rules of one record kind, in evaluation order."""
    return tuple(r for r in RULES if r.record == record)


def evaluate(expr: Expr, record: dict[str, object]) -> Decimal:
    """Evaluate `expr` exactly on an already schema-valid record."""
    if isinstance(expr, Const):
        return expr.value
    if isinstance(expr, Field):
        return Decimal(str(record[expr.name]))
    left, right = evaluate(expr.left, record), evaluate(expr.right, record)
    if expr.op == "+":
        return left + right
    if expr.op == "-":
        return left - right
    return left * right


def holds(rule: Rule, record: dict[str, object]) -> bool:
    """Return whether `rule` holds for a schema-valid record."""
    left, right = evaluate(rule.left, record), evaluate(rule.right, record)
    if rule.cmp == ">":
        return left > right
    if rule.cmp == ">=":
        return left >= right
    return left == right
