"""Spark artifacts derived from the schemas: the wire `StructType`s and the money type.

Money stays `StringType` in the wire schema: the JSON carries it as a string so that no float
ever touches it; the speed layer hands Spark validated money already as `MONEY_TYPE`
(`DecimalType(10,2)`). Timestamps stay `StringType` on the wire too.

Records are validated by the Python validator (`lambdapipe.contracts.validate_event`), in Spark
through one Arrow pass (`lambdapipe.speed.records`): see docs/speed.md, "Validation".
"""

from typing import Final

from pyspark.sql.types import (
    BooleanType,
    DataType,
    DecimalType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
)

from lambdapipe.contracts.registry import default_registry
from lambdapipe.contracts.rules import FieldRule, entity_records, merged_fields

MONEY_TYPE: Final = DecimalType(10, 2)
_INT32_MAX: Final = 2**31 - 1


def _spark_type(rule: FieldRule) -> DataType:
    if rule.json_type == "boolean":
        return BooleanType()
    if rule.json_type == "integer":
        bounded = rule.minimum is not None and rule.maximum is not None
        if bounded and -_INT32_MAX - 1 <= rule.minimum <= rule.maximum <= _INT32_MAX:  # type: ignore[operator]
            return IntegerType()
        return LongType()
    return StringType()


def spark_schema(entity: str = "user_event") -> StructType:
    """The wire schema of `user_event` (all event types in one struct) or of an entity.

    Fields that some event types lack, or that allow null, are nullable.
    """
    records = entity_records(default_registry(), entity)
    return StructType(
        [
            StructField(rule.name, _spark_type(rule), nullable=optional)
            for rule, optional in merged_fields(records)
        ]
    )
