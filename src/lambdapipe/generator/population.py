"""The shop's users and products, generated deterministically from a seed.

`lambdapipe dims load` writes exactly these records into PostgreSQL, and the generator draws its
traffic from them, so the two always agree. Generation is sequential from one seeded stream:
`users(n, seed)[:k] == users(k, seed)`, and likewise for products.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass
from typing import Any, Final

from lambdapipe.generator.sampling import AliasTable, money, uuid_from_bits

TIERS: Final = ("bronze", "silver", "gold", "platinum")
TIER_SHARES: Final = (0.60, 0.25, 0.12, 0.03)
# Expected events per user relative to bronze.
ACTIVITY: Final = (1.0, 1.3, 1.6, 1.9)
# Probability that a purchased product line gets a discount, and the discount's percentage.
DISCOUNT_PROBABILITY: Final = (0.05, 0.10, 0.20, 0.30)
DISCOUNT_PERCENT: Final = (10, 10, 15, 20)
ZIPF_EXPONENT: Final = 1.1
# Fixed, so the population never depends on the day it is generated.
POPULATION_TIME: Final = "2026-01-01T00:00:00.000Z"

_FIRST = (
    "Ada",
    "Alan",
    "Grace",
    "Linus",
    "Barbara",
    "Edsger",
    "Margaret",
    "Dennis",
    "Frances",
    "Ken",
    "Radia",
    "Tim",
    "Hedy",
    "John",
    "Katherine",
    "Guido",
    "Sophie",
    "Niklaus",
)
_LAST = (
    "Lovelace",
    "Turing",
    "Hopper",
    "Torvalds",
    "Liskov",
    "Dijkstra",
    "Hamilton",
    "Ritchie",
    "Allen",
    "Thompson",
    "Perlman",
    "Berners-Lee",
    "Lamarr",
    "Backus",
    "Johnson",
    "Wilson",
)
_PLACES = (
    ("US", "New York"),
    ("US", "Austin"),
    ("GB", "London"),
    ("DE", "Berlin"),
    ("FR", "Paris"),
    ("ES", "Madrid"),
    ("IT", "Milan"),
    ("NL", "Amsterdam"),
    ("CA", "Toronto"),
    ("JP", "Tokyo"),
    ("BR", "Sao Paulo"),
    ("IN", "Bengaluru"),
)
# category -> (subcategories, min price cents, max price cents)
_CATALOGUE: Final = {
    "Electronics": (("Phones", "Laptops", "Audio", "Cameras"), 1999, 199999),
    "Footwear": (("Running", "Hiking", "Casual"), 2999, 24999),
    "Apparel": (("Shirts", "Jackets", "Trousers"), 999, 29999),
    "Home": (("Kitchen", "Furniture", "Lighting"), 499, 149999),
    "Books": (("Fiction", "Science", "Children"), 499, 5999),
    "Sports": (("Cycling", "Fitness", "Camping"), 999, 99999),
    "Beauty": (("Skincare", "Fragrance"), 399, 14999),
    "Toys": (("Puzzles", "Building", "Games"), 599, 19999),
}
_BRANDS = (
    "Northpeak",
    "Acme",
    "Lumen",
    "Vertex",
    "Orbit",
    "Kestrel",
    "Nimbus",
    "Tideline",
    "Quarry",
    "Solace",
    "Brightwork",
    "Halcyon",
)


@dataclass(frozen=True, slots=True)
class User:
    """A registered customer; fields are those of `schemas/entities/user.json`."""

    user_id: str
    email: str
    first_name: str
    last_name: str
    date_of_birth: str
    registration_date: str
    country: str
    city: str
    tier: str
    is_active: bool
    last_login: str | None
    updated_at: str

    def as_record(self) -> dict[str, Any]:
        """The user as a plain dict, as the schema and the `users` table want it."""
        return dataclasses.asdict(self)


@dataclass(frozen=True, slots=True)
class Product:
    """A catalogue product; fields are those of `schemas/entities/product.json`."""

    product_id: str
    name: str
    category: str
    subcategory: str
    brand: str
    price: str
    cost: str
    is_active: bool
    created_at: str
    updated_at: str

    def as_record(self) -> dict[str, Any]:
        """The product as a plain dict, as the schema and the `products` table want it."""
        return dataclasses.asdict(self)


def watched(user_id: str, share: float) -> bool:
    """Whether `user_id` is among the `share` of users whose tier churn may move and whose every
    event the truth records (docs/generator.md#tier-churn): a function of the id alone, so the
    generator and `dims churn` agree without sharing a list."""
    return int(user_id[:8], 16) < share * 2**32


def tier_index(tier: str) -> int:
    """Position of a tier name in TIERS."""
    return TIERS.index(tier)


def users(n: int, seed: int) -> list[User]:
    """The first `n` users of the population of `seed`; tiers drawn with TIER_SHARES."""
    rng = random.Random(f"users:{seed}")  # noqa: S311 - a seeded simulation
    draw = rng.random
    tiers = AliasTable(TIER_SHARES)
    out = []
    for i in range(n):
        first = _FIRST[int(draw() * len(_FIRST))]
        last = _LAST[int(draw() * len(_LAST))]
        country, city = _PLACES[int(draw() * len(_PLACES))]
        user_id = uuid_from_bits(rng.getrandbits(128))
        born = f"{1950 + int(draw() * 58)}-{1 + int(draw() * 12):02d}-{1 + int(draw() * 28):02d}"
        joined = f"{2019 + int(draw() * 7)}-{1 + int(draw() * 12):02d}-{1 + int(draw() * 28):02d}"
        seconds = int(draw() * 31 * 86_400)
        last_login = (
            None
            if draw() < 0.1
            else (
                f"2025-12-{1 + seconds // 86_400:02d}T{seconds // 3600 % 24:02d}:"
                f"{seconds // 60 % 60:02d}:{seconds % 60:02d}.{int(draw() * 1000):03d}Z"
            )
        )
        out.append(
            User(
                user_id=user_id,
                email=f"{first}.{last}.{i}@example.com".lower(),
                first_name=first,
                last_name=last,
                date_of_birth=born,
                registration_date=joined,
                country=country,
                city=city,
                tier=TIERS[tiers.sample(rng)],
                is_active=True,
                last_login=last_login,
                updated_at=POPULATION_TIME,
            )
        )
    return out


def products(m: int, seed: int) -> list[Product]:
    """The first `m` products of the catalogue of `seed`, with log-uniform prices per category."""
    rng = random.Random(f"products:{seed}")  # noqa: S311 - a seeded simulation
    categories = list(_CATALOGUE)
    out = []
    for i in range(m):
        category = rng.choice(categories)
        subcategories, lo, hi = _CATALOGUE[category]
        subcategory = rng.choice(subcategories)
        brand = rng.choice(_BRANDS)
        price = int(lo * (hi / lo) ** rng.random())
        cost = price * rng.randint(45, 75) // 100
        out.append(
            Product(
                product_id=uuid_from_bits(rng.getrandbits(128)),
                name=f"{brand} {subcategory} {i + 1}",
                category=category,
                subcategory=subcategory,
                brand=brand,
                price=money(price),
                cost=money(max(cost, 1)),
                is_active=True,
                created_at=POPULATION_TIME,
                updated_at=POPULATION_TIME,
            )
        )
    return out


def popularity(m: int, seed: int) -> AliasTable:
    """Zipf-like popularity over `m` products: a seeded permutation of ranks 1..m."""
    ranks = list(range(1, m + 1))
    random.Random(f"popularity:{seed}").shuffle(ranks)  # noqa: S311 - a seeded simulation
    return AliasTable([rank**-ZIPF_EXPONENT for rank in ranks])
