"""The fixed taxonomy of rejection reasons shared by every validator (Python and Spark).

Checks run in this order and the first failure wins, so a record gets exactly one reason:

1. ``too_large``: the raw bytes exceed the size limit (checked before parsing).
2. ``not_json``: not valid UTF-8 JSON.
3. ``not_object``: valid JSON but not an object.
4. ``missing_field`` if ``event_type`` is absent, ``unknown_event_type`` if it names no known type.
5. ``missing_field``: a required field is absent (in the schema's ``required`` order).
6. Field values, in the schema's property order: the field's own reason (``bad_uuid``, ``bad_ip``,
   ``bad_timestamp``, ``bad_money``) or ``schema_violation`` for any other field.
7. ``schema_violation``: a property the schema does not declare.
8. ``future_timestamp``: the event time is too far ahead of now.
9. ``business_rule``: a rule the schema cannot express (amounts, totals).
"""

from enum import StrEnum


class Reason(StrEnum):
    """Why a record was rejected; the value travels with the record to the dead-letter topic."""

    TOO_LARGE = "too_large"
    NOT_JSON = "not_json"
    NOT_OBJECT = "not_object"
    UNKNOWN_EVENT_TYPE = "unknown_event_type"
    MISSING_FIELD = "missing_field"
    SCHEMA_VIOLATION = "schema_violation"
    BAD_UUID = "bad_uuid"
    BAD_IP = "bad_ip"
    BAD_TIMESTAMP = "bad_timestamp"
    FUTURE_TIMESTAMP = "future_timestamp"
    BAD_MONEY = "bad_money"
    BUSINESS_RULE = "business_rule"
