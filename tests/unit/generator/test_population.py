"""The population: tier shares, determinism, schema fit, Zipf-like popularity in O(1)."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import jsonschema
import pytest
from referencing import Registry, Resource

from lambdapipe.generator.population import TIER_SHARES, TIERS, popularity, products, users
from lambdapipe.generator.sampling import AliasTable

SCHEMAS = Path(__file__).resolve().parents[3] / "schemas"


def _validator(entity: str) -> jsonschema.Draft202012Validator:
    resources = []
    for path in SCHEMAS.rglob("*.json"):
        if "examples" in path.parts:
            continue
        schema = json.loads(path.read_text())
        resources.append((schema["$id"], Resource.from_contents(schema)))
    registry: Registry = Registry().with_resources(resources)
    schema = json.loads((SCHEMAS / "entities" / f"{entity}.json").read_text())
    return jsonschema.Draft202012Validator(schema, registry=registry)


def test_tier_shares_of_100k_users_within_one_point() -> None:
    tiers = Counter(u.tier for u in users(100_000, seed=1))
    for tier, share in zip(TIERS, TIER_SHARES, strict=True):
        assert abs(tiers[tier] / 100_000 - share) < 0.01, tier


def test_population_is_deterministic_and_prefix_stable() -> None:
    assert users(500, seed=3) == users(500, seed=3)
    assert users(1_000, seed=3)[:200] == users(200, seed=3)
    assert products(300, seed=3)[:50] == products(50, seed=3)
    assert users(50, seed=3) != users(50, seed=4)


def test_records_fit_the_entity_schemas() -> None:
    user_check, product_check = _validator("user"), _validator("product")
    for user in users(2_000, seed=5):
        user_check.validate(user.as_record())
    for product in products(1_000, seed=5):
        product_check.validate(product.as_record())
    assert len({u.user_id for u in users(20_000, seed=5)}) == 20_000


def test_popularity_is_skewed_like_zipf() -> None:
    table = popularity(1_000, seed=1)
    rng = random.Random(0)
    counts = Counter(table.sample(rng) for _ in range(200_000))
    ranked = [n for _, n in counts.most_common()]
    # Zipf(1.1): the top product is ~2.1x the second and the top 10% take most draws.
    assert 1.7 < ranked[0] / ranked[1] < 2.6
    assert sum(ranked[:100]) / 200_000 > 0.6


def test_alias_table_matches_weights() -> None:
    table = AliasTable([1, 2, 3, 4])
    rng = random.Random(1)
    counts = Counter(table.sample(rng) for _ in range(100_000))
    for i, weight in enumerate([1, 2, 3, 4]):
        assert counts[i] / 100_000 == pytest.approx(weight / 10, abs=0.01)
