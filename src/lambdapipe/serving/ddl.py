"""ClickHouse DDL of the serving store: realtime tables and their aggregating materialized views.

Columns of the event and transaction tables are derived from the JSON Schemas through
`lambdapipe.contracts.clickhouse`; the session and dead-letter tables are the speed layer's own
outputs, with their enum-backed columns typed from the same contracts. Every statement is
idempotent (`IF NOT EXISTS`), so `create_schema` runs at every start of `lambdapipe serve`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from lambdapipe.contracts.clickhouse import Column, enriched_columns

# How many recent insert tokens each table remembers; a replay older than this is not caught.
DEDUP_WINDOW: Final = 10_000
# Inserts go through these settings so a replayed batch is dropped in the tables and the MVs.
INSERT_SETTINGS: Final[dict[str, str]] = {
    # chdb turns async_insert on by default; it has its own, different deduplication.
    "async_insert": "0",
    "insert_deduplicate": "1",
    "deduplicate_blocks_in_dependent_materialized_views": "1",
}
FUNNEL_STEPS: Final = ("page_view", "product_view", "add_to_cart", "checkout_start", "purchase")
# Longest time (ms) allowed from the first to the last funnel step; sessions end after 30 idle
# minutes, so a day covers any session the speed layer emits.
FUNNEL_WINDOW_MS: Final = 86_400_000

INGESTED_AT: Final[Column] = ("ingested_at", "DateTime64(3, 'UTC')")
_TIME: Final = "DateTime64(3, 'UTC')"
_LOW: Final = "LowCardinality(String)"


@dataclass(frozen=True)
class Table:
    """A base table: columns, time column for partitioning and TTL, engine and sort key."""

    name: str
    columns: tuple[Column, ...]
    time_column: str
    order_by: str

    def ddl(self, retention_days: int) -> str:
        """CREATE TABLE statement with the given retention (days after the time column)."""
        cols = ",\n    ".join(
            f"`{name}` {kind} DEFAULT now64(3)"
            if (name, kind) == INGESTED_AT
            else f"`{name}` {kind}"
            for name, kind in self.columns
        )
        return (
            f"CREATE TABLE IF NOT EXISTS {self.name} (\n    {cols}\n)\n"
            f"ENGINE = MergeTree\n"
            f"PARTITION BY toYYYYMM({self.time_column})\n"
            f"ORDER BY ({self.order_by})\n"
            f"TTL toDateTime({self.time_column}) + INTERVAL {retention_days} DAY\n"
            f"SETTINGS non_replicated_deduplication_window = {DEDUP_WINDOW}"
        )


@dataclass(frozen=True)
class MaterializedView:
    """An aggregating MV: its target AggregatingMergeTree table and the SELECT that feeds it."""

    name: str
    source: str
    columns: tuple[Column, ...]
    order_by: str
    partition_by: str
    select: str

    @property
    def target(self) -> str:
        """The table the MV writes to; queries read it with -Merge functions."""
        return f"{self.name.removesuffix('_mv')}_agg"

    def ddl(self) -> tuple[str, str]:
        """CREATE TABLE for the target, then CREATE MATERIALIZED VIEW ... TO it."""
        cols = ",\n    ".join(f"`{name}` {kind}" for name, kind in self.columns)
        table = (
            f"CREATE TABLE IF NOT EXISTS {self.target} (\n    {cols}\n)\n"
            f"ENGINE = AggregatingMergeTree\n"
            f"PARTITION BY {self.partition_by}\n"
            f"ORDER BY ({self.order_by})\n"
            f"SETTINGS non_replicated_deduplication_window = {DEDUP_WINDOW}"
        )
        view = (
            f"CREATE MATERIALIZED VIEW IF NOT EXISTS {self.name} TO {self.target} AS\n{self.select}"
        )
        return table, view


SESSION_COLUMNS: Final[tuple[Column, ...]] = (
    ("session_id", "UUID"),
    ("user_id", "UUID"),
    ("session_start", _TIME),
    ("session_end", _TIME),
    ("duration_s", "UInt32"),
    ("event_count", "UInt32"),
    ("page_views", "UInt16"),
    ("product_views", "UInt16"),
    ("searches", "UInt16"),
    ("add_to_carts", "UInt16"),
    ("remove_from_carts", "UInt16"),
    ("checkout_starts", "UInt16"),
    ("purchases", "UInt16"),
    ("logins", "UInt16"),
    ("logouts", "UInt16"),
    ("revenue", "Decimal(10, 2)"),
    ("items", "UInt32"),
    ("device_type", _LOW),
    ("browser", _LOW),
    ("user_tier", _LOW),
    ("converted", "Bool"),
    INGESTED_AT,
)

DEAD_LETTER_COLUMNS: Final[tuple[Column, ...]] = (
    ("dead_lettered_at", _TIME),
    ("source_topic", _LOW),
    ("source_partition", "UInt32"),
    ("source_offset", "UInt64"),
    ("reason", _LOW),
    ("event_type", "LowCardinality(Nullable(String))"),
    ("detail", "String"),
    ("raw", "String"),
    INGESTED_AT,
)

TABLES: Final[tuple[Table, ...]] = (
    Table(
        "user_events_realtime",
        (*enriched_columns("user_event"), INGESTED_AT),
        "timestamp",
        "event_type, timestamp",
    ),
    Table(
        "transactions_realtime",
        (*enriched_columns("transaction"), INGESTED_AT),
        "timestamp",
        "status, timestamp",
    ),
    Table("user_sessions_realtime", SESSION_COLUMNS, "session_start", "user_tier, session_start"),
    Table("dead_letters_realtime", DEAD_LETTER_COLUMNS, "dead_lettered_at", "dead_lettered_at"),
)


def _agg(function: str, argument_type: str) -> str:
    return f"AggregateFunction({function}, {argument_type})"


def _funnel_conditions() -> str:
    return ", ".join(f"event_type = '{step}'" for step in FUNNEL_STEPS)


MATERIALIZED_VIEWS: Final[tuple[MaterializedView, ...]] = (
    MaterializedView(
        name="user_activity_summary_mv",
        source="user_events_realtime",
        columns=(
            ("minute", "DateTime('UTC')"),
            ("event_type", _LOW),
            ("user_tier", _LOW),
            ("device_type", _LOW),
            ("events", "SimpleAggregateFunction(sum, UInt64)"),
            ("users", _agg("uniq", "UUID")),
            ("sessions", _agg("uniq", "UUID")),
        ),
        order_by="minute, event_type, user_tier, device_type",
        partition_by="toYYYYMM(minute)",
        select="""SELECT
    toStartOfMinute(timestamp) AS minute,
    event_type,
    user_tier,
    device_type,
    toUInt64(count()) AS events,
    uniqState(user_id) AS users,
    uniqState(session_id) AS sessions
FROM user_events_realtime
GROUP BY minute, event_type, user_tier, device_type""",
    ),
    MaterializedView(
        name="conversion_funnel_mv",
        source="user_events_realtime",
        columns=(
            ("day", "Date"),
            ("session_id", "UUID"),
            ("user_tier", f"SimpleAggregateFunction(anyLast, {_LOW})"),
            ("device_type", f"SimpleAggregateFunction(anyLast, {_LOW})"),
            (
                "funnel",
                f"AggregateFunction(windowFunnel({FUNNEL_WINDOW_MS}), UInt64, "
                + ", ".join(["UInt8"] * len(FUNNEL_STEPS))
                + ")",
            ),
        ),
        order_by="day, session_id",
        partition_by="toYYYYMM(day)",
        select=f"""SELECT
    toDate(timestamp) AS day,
    session_id,
    anyLast(user_tier) AS user_tier,
    anyLast(device_type) AS device_type,
    windowFunnelState({FUNNEL_WINDOW_MS})(
        toUInt64(toUnixTimestamp64Milli(timestamp)), {_funnel_conditions()}
    ) AS funnel
FROM user_events_realtime
WHERE event_type IN {FUNNEL_STEPS!r}
GROUP BY day, session_id""",
    ),
    MaterializedView(
        name="product_performance_mv",
        source="user_events_realtime",
        columns=(
            ("day", "Date"),
            ("product_id", "UUID"),
            ("views", "SimpleAggregateFunction(sum, UInt64)"),
            ("add_to_carts", "SimpleAggregateFunction(sum, UInt64)"),
            ("purchases", "SimpleAggregateFunction(sum, UInt64)"),
            ("units", "SimpleAggregateFunction(sum, UInt64)"),
            ("revenue", "SimpleAggregateFunction(sum, Decimal(38, 2))"),
            ("viewers", _agg("uniq", "UUID")),
            ("buyers", _agg("uniq", "UUID")),
        ),
        order_by="day, product_id",
        partition_by="toYYYYMM(day)",
        select="""SELECT
    toDate(timestamp) AS day,
    assumeNotNull(product_id) AS product_id,
    toUInt64(countIf(event_type = 'product_view')) AS views,
    toUInt64(countIf(event_type = 'add_to_cart')) AS add_to_carts,
    toUInt64(countIf(event_type = 'purchase')) AS purchases,
    toUInt64(sumIf(ifNull(quantity, 0), event_type = 'purchase')) AS units,
    toDecimal128(sumIf(ifNull(amount, 0), event_type = 'purchase'), 2) AS revenue,
    uniqStateIf(user_id, event_type = 'product_view') AS viewers,
    uniqStateIf(user_id, event_type = 'purchase') AS buyers
FROM user_events_realtime
WHERE product_id IS NOT NULL
GROUP BY day, product_id""",
    ),
    MaterializedView(
        name="user_tier_performance_mv",
        source="user_sessions_realtime",
        columns=(
            ("day", "Date"),
            ("user_tier", _LOW),
            ("sessions", "SimpleAggregateFunction(sum, UInt64)"),
            ("converted_sessions", "SimpleAggregateFunction(sum, UInt64)"),
            ("events", "SimpleAggregateFunction(sum, UInt64)"),
            ("purchases", "SimpleAggregateFunction(sum, UInt64)"),
            ("revenue", "SimpleAggregateFunction(sum, Decimal(38, 2))"),
            ("users", _agg("uniq", "UUID")),
            ("avg_duration_s", _agg("avg", "UInt32")),
            ("avg_session_revenue", _agg("avg", "Decimal(10, 2)")),
        ),
        order_by="day, user_tier",
        partition_by="toYYYYMM(day)",
        select="""SELECT
    toDate(s.session_start) AS day,
    s.user_tier AS user_tier,
    toUInt64(count()) AS sessions,
    toUInt64(countIf(s.converted)) AS converted_sessions,
    toUInt64(sum(s.event_count)) AS events,
    toUInt64(sum(s.purchases)) AS purchases,
    toDecimal128(sum(s.revenue), 2) AS revenue,
    uniqState(s.user_id) AS users,
    avgState(s.duration_s) AS avg_duration_s,
    avgState(s.revenue) AS avg_session_revenue
FROM user_sessions_realtime AS s
GROUP BY day, user_tier""",
    ),
)

TABLE_NAMES: Final = frozenset(t.name for t in TABLES)


def schema_statements(retention_days: int) -> list[str]:
    """Every statement that builds the store, in dependency order (tables, targets, views)."""
    statements = [table.ddl(retention_days) for table in TABLES]
    for view in MATERIALIZED_VIEWS:
        statements.extend(view.ddl())
    return statements
