"""The dbt project's enumerations equal the schemas' (the source of truth)."""

from __future__ import annotations

from pathlib import Path

import yaml

from lambdapipe.contracts import Reason
from lambdapipe.contracts.clickhouse import enriched_tiers
from lambdapipe.contracts.registry import EVENT_TYPES, default_registry
from lambdapipe.contracts.rules import entity_records, merged_fields
from lambdapipe.serving.ddl import FUNNEL_STEPS

PROJECT = Path(__file__).resolve().parents[3] / "dbt" / "dbt_project.yml"


def _enum(entity: str, name: str) -> list[str]:
    for rule, _ in merged_fields(entity_records(default_registry(), entity)):
        if rule.name == name:
            assert rule.enum is not None
            return list(rule.enum)
    raise KeyError(name)


def test_enumerations_come_from_the_schemas() -> None:
    variables = yaml.safe_load(PROJECT.read_text())["vars"]
    assert set(variables["event_types"]) == set(EVENT_TYPES)
    assert set(variables["event_type_counts"]) == set(EVENT_TYPES)
    assert variables["enriched_tiers"] == list(enriched_tiers())
    assert variables["device_types"] == _enum("user_event", "device_type")
    assert variables["browsers"] == _enum("user_event", "browser")
    assert variables["transaction_statuses"] == _enum("transaction", "status")
    assert variables["payment_methods"] == _enum("transaction", "payment_method")
    assert variables["currencies"] == _enum("transaction", "currency")
    assert set(variables["rejection_reasons"]) == {r.value for r in Reason}
    assert tuple(variables["funnel_steps"]) == FUNNEL_STEPS
