"""Shop days generated inside ClickHouse (INSERT ... SELECT FROM numbers()), shaped like the
speed layer's output: events in sessions of ~10, the sessions the sessionizer would emit for
them, the transactions of their purchases. What `bench_merged.py` fills a store with at the
size of issue 16 (10M realtime + 100M batch events) in minutes, not hours of Arrow.

Every id is a hash of the day's seed and the row's number, so a day is the same at every run.
Users (100K) and products (10K) are shared by every day, as a shop's are.
"""

from __future__ import annotations

from typing import Final

from lambdapipe.speed.sessionize import EVENT_COUNTS

USERS: Final = 100_000
PRODUCTS: Final = 10_000
EVENTS_PER_SESSION: Final = 10
SESSION_SPAN_S: Final = 20 * 60
# Event mix (page_view 35% ... logout 1%): cumulative percentages.
_MIX: Final = (
    ("page_view", 35),
    ("product_view", 60),
    ("search", 75),
    ("add_to_cart", 85),
    ("purchase", 90),
    ("remove_from_cart", 94),
    ("checkout_start", 97),
    ("login", 99),
)
_TIERS: Final = (("bronze", 58), ("silver", 83), ("gold", 95), ("platinum", 98))
_WITH_PRODUCT: Final = "('product_view', 'add_to_cart', 'remove_from_cart', 'purchase')"


def uuid_of(*parts: str) -> str:
    """A UUID that is a hash of `parts` (SQL expressions)."""
    key = ", ".join(parts)
    return (
        f"reinterpretAsUUID(concat(reinterpretAsFixedString(cityHash64({key}, 1)), "
        f"reinterpretAsFixedString(cityHash64({key}, 2))))"
    )


def _pick(value: str, shares: tuple[tuple[str, int], ...], last: str) -> str:
    cases = ", ".join(f"{value} < {bound}, '{name}'" for name, bound in shares)
    return f"multiIf({cases}, '{last}')"


def events_sql(target: str, seed: int, start_s: int, span_s: int, events: int) -> str:
    """INSERT of `events` events into `target` whose sessions start within `span_s` seconds
    from `start_s` (epoch seconds) and last at most 20 minutes."""
    starts = max(1, span_s - SESSION_SPAN_S)
    return f"""INSERT INTO {target} (event_id, user_id, session_id, event_type, timestamp,
    device_type, browser, ip_address, page_url, product_id, quantity, transaction_id, amount,
    user_tier)
SELECT
    {uuid_of(str(seed), "number", "'e'")} AS event_id,
    {uuid_of("'u'", f"cityHash64({seed}, s, 'u') % {USERS}")} AS user_id,
    {uuid_of(str(seed), "s", "'s'")} AS session_id,
    {_pick("h % 100", _MIX, "logout")} AS event_type,
    toDateTime64({start_s} + hs % {starts}
        + bitShiftRight(h, 40) % {SESSION_SPAN_S * 1000} / 1000, 3, 'UTC')
        AS timestamp,
    ['desktop', 'mobile', 'tablet'][1 + bitShiftRight(hs, 8) % 3] AS device_type,
    ['chrome', 'safari', 'firefox', 'edge', 'samsung', 'other'][1 + bitShiftRight(hs, 16) % 6]
        AS browser,
    toIPv4(167772160 + bitShiftRight(h, 8) % 16777215) AS ip_address,
    if(event_type = 'page_view', '/home', NULL) AS page_url,
    if(event_type IN {_WITH_PRODUCT},
       {uuid_of("'p'", f"bitShiftRight(h, 16) % {PRODUCTS}")}, NULL) AS product_id,
    if(event_type IN {_WITH_PRODUCT}, toUInt8(1 + bitShiftRight(h, 24) % 4), NULL) AS quantity,
    if(event_type = 'purchase', {uuid_of(str(seed), "number", "'t'")}, NULL) AS transaction_id,
    if(event_type = 'purchase', toDecimal64(5 + bitShiftRight(h, 28) % 49500 / 100, 2), NULL)
        AS amount,
    {_pick("bitShiftRight(hs, 24) % 100", _TIERS, "unknown")} AS user_tier
FROM (
    SELECT number, intDiv(number, {EVENTS_PER_SESSION}) AS s,
        cityHash64({seed}, number) AS h, cityHash64({seed}, s) AS hs
    FROM numbers({events})
)"""


def sessions_sql(target: str, events: str, where: str = "1") -> str:
    """INSERT into `target` of one row per session of the `events` rows matching `where`: what
    the speed layer's sessionizer emits when the session closes."""
    counts = ",\n    ".join(
        f"toUInt16(countIf(event_type = '{kind}')) AS {column}" for kind, column in EVENT_COUNTS
    )
    return f"""INSERT INTO {target} (session_id, user_id, session_start, session_end, duration_s,
    event_count, page_views, product_views, searches, add_to_carts, remove_from_carts,
    checkout_starts, purchases, logins, logouts, revenue, items, device_type, browser,
    user_tier, converted)
SELECT
    session_id,
    any(user_id) AS user_id,
    min(timestamp) AS session_start,
    max(timestamp) AS session_end,
    toUInt32(intDiv(toUnixTimestamp64Milli(session_end) - toUnixTimestamp64Milli(session_start),
        1000)) AS duration_s,
    toUInt32(count()) AS event_count,
    {counts},
    toDecimal64(sumIf(ifNull(amount, 0), event_type = 'purchase'), 2) AS revenue,
    toUInt32(sumIf(ifNull(quantity, 0), event_type = 'purchase')) AS items,
    any(device_type) AS device_type,
    any(browser) AS browser,
    any(user_tier) AS user_tier,
    purchases > 0 AS converted
FROM {events}
WHERE {where}
GROUP BY session_id"""


def transactions_sql(target: str, events: str, where: str = "1") -> str:
    """INSERT into `target` of one transaction per purchase among the `events` rows matching
    `where` (90% completed, 5% pending, 5% failed)."""
    return f"""INSERT INTO {target} (transaction_id, user_id, session_id, product_id, quantity,
    unit_price, discount_amount, tax_amount, total_amount, currency, payment_method, status,
    timestamp, user_tier)
SELECT
    assumeNotNull(transaction_id),
    user_id,
    session_id,
    assumeNotNull(product_id),
    assumeNotNull(quantity),
    assumeNotNull(amount),
    toDecimal64(0, 2),
    toDecimal64(0, 2),
    assumeNotNull(amount),
    'USD',
    ['credit_card', 'paypal', 'apple_pay'][1 + cityHash64(transaction_id) % 3],
    multiIf(cityHash64(transaction_id, 's') % 100 < 90, 'completed',
        cityHash64(transaction_id, 's') % 100 < 95, 'pending', 'failed'),
    timestamp,
    user_tier
FROM {events}
WHERE event_type = 'purchase' AND ({where})"""


def products_sql(target: str) -> str:
    """INSERT of the catalogue: a name and category for every product id the events use."""
    return f"""INSERT INTO {target} (product_id, name, category, subcategory, brand, price,
    is_active, updated_at, deleted, version)
SELECT
    {uuid_of("'p'", "number")},
    concat('Product ', toString(number)),
    ['electronics', 'clothing', 'home', 'books', 'sports', 'beauty'][1 + number % 6],
    'general',
    'brand',
    toDecimal64(5 + number % 495, 2),
    true,
    now64(3),
    false,
    1
FROM numbers({PRODUCTS})"""
