"""Business rules the schemas cannot express, written once as tiny expressions.

Each rule is a comparison over decimal arithmetic on fields. The Python validator evaluates it
with `Decimal` (exact) and the Spark validator translates it to a Column with DecimalType, so
both apply the same rule.
"""

import operator
from collections.abc import Callable, Mapping
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


Broken = Callable[[Mapping[str, object]], str | None]
_Value = Callable[[Mapping[str, object]], Decimal]
_OPS = {"+": operator.add, "-": operator.sub, "*": operator.mul}
_CMPS = {">": operator.gt, ">=": operator.ge, "==": operator.eq}


def _value(expr: Expr) -> _Value:
    """Compile `expr` into an exact evaluation on an already schema-valid record."""
    if isinstance(expr, Const):
        value = expr.value
        return lambda record: value
    if isinstance(expr, Field):
        name = expr.name
        return lambda record: Decimal(str(record[name]))
    op, left, right = _OPS[expr.op], _value(expr.left), _value(expr.right)
    return lambda record: op(left(record), right(record))


def first_broken(rules: tuple[Rule, ...]) -> Broken:
    """Compile `rules` into a function naming the first rule a schema-valid record breaks."""
    compiled = tuple((_CMPS[r.cmp], _value(r.left), _value(r.right), r.name) for r in rules)

    def broken(record: Mapping[str, object]) -> str | None:
        for cmp, left, right, name in compiled:
            if not cmp(left(record), right(record)):
                return name
        return None

    return broken
