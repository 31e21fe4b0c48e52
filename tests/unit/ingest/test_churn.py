"""Churn's choices without a database: new users never reuse an id, reruns draw anew."""

from __future__ import annotations

import random
import uuid

from lambdapipe.generator.population import TIERS
from lambdapipe.ingest.churn import churn_rng, new_user_id, next_tier


def test_a_new_user_id_is_never_one_already_taken() -> None:
    first = new_user_id(random.Random(1), set())
    again = new_user_id(random.Random(1), {first})
    assert again != first
    assert uuid.UUID(again).version == 4


def test_the_same_seed_on_the_same_shop_repeats_itself() -> None:
    assert churn_rng(42, 10_000, 1_000).random() == churn_rng(42, 10_000, 1_000).random()


def test_a_rerun_on_a_grown_shop_draws_other_new_users() -> None:
    first = new_user_id(churn_rng(42, 10_000, 1_000), set())
    rerun = new_user_id(churn_rng(42, 10_015, 1_000), set())
    assert first != rerun


def test_a_tier_move_stays_on_the_ladder_and_moves() -> None:
    rng = random.Random(3)
    for tier in TIERS * 50:
        moved = next_tier(tier, rng)
        assert moved in TIERS
        assert abs(TIERS.index(moved) - TIERS.index(tier)) == 1
