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
# The per-event-type counts of a closed session (`user_sessions_realtime`) behind each step.
FUNNEL_STEP_COUNTS: Final = (
    "page_views",
    "product_views",
    "add_to_carts",
    "checkout_starts",
    "purchases",
)
# Distinct counts are HyperLogLog-backed uniqCombined states with 2^14 cells: ~0.8% standard
# error, at most ~12 KB per state, exact below a few thousand values; small enough that queries
# merge thousands of them in milliseconds (uniq states reach 256 KB).
DISTINCT: Final = "uniqCombined(14)"
# Relative accuracy of the ingestion-lag quantile sketch (DDSketch: merges are exact).
LAG_ACCURACY: Final = 0.01
# The ingestion rollup only answers "the last minute"; a day of it is plenty.
INGESTION_TTL_DAYS: Final = 1

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
class Projection:
    """A second sort order of some columns of a rollup, in its own granules, kept in the same
    parts (so a REPLACE PARTITION swaps both at once); ClickHouse reads it for the queries that
    need only its columns and filter on its key."""

    name: str
    columns: tuple[str, ...]
    order_by: str
    index_granularity: int = 8192

    def ddl(self) -> str:
        return (
            f"PROJECTION {self.name} (SELECT {', '.join(self.columns)} ORDER BY {self.order_by})"
            f" WITH SETTINGS (index_granularity = {self.index_granularity})"
        )


@dataclass(frozen=True)
class MaterializedView:
    """An aggregating MV: its target AggregatingMergeTree table and the SELECT that feeds it.

    `into` names a target shared by several views (default `<view without _mv>_agg`); `ttl`
    keeps a rollup that only answers recent questions small; a small `index_granularity` lets
    a lookup of a few keys skip the large aggregate states of the other rows.
    """

    name: str
    source: str
    columns: tuple[Column, ...]
    order_by: str
    partition_by: str
    select: str
    into: str | None = None
    ttl: str | None = None
    index_granularity: int = 8192
    projection: Projection | None = None

    @property
    def target(self) -> str:
        """The table the MV writes to; queries read it with -Merge functions."""
        return self.into or f"{self.name.removesuffix('_mv')}_agg"

    def body(self) -> str:
        """The columns (and projection) of the target, as in CREATE TABLE (...)."""
        cols = [f"`{name}` {kind}" for name, kind in self.columns]
        if self.projection:
            cols.append(self.projection.ddl())
        return ",\n    ".join(cols)

    def settings(self) -> str:
        """The target's SETTINGS: its granularity, and for a projection its rebuild at merges
        (an AggregatingMergeTree refuses a projection otherwise)."""
        rebuild = ", deduplicate_merge_projection_mode = 'rebuild'" if self.projection else ""
        return f"index_granularity = {self.index_granularity}{rebuild}"

    def ddl(self) -> tuple[str, str]:
        """CREATE TABLE for the target, then CREATE MATERIALIZED VIEW ... TO it."""
        ttl = f"TTL {self.ttl}\n" if self.ttl else ""
        table = (
            f"CREATE TABLE IF NOT EXISTS {self.target} (\n    {self.body()}\n)\n"
            f"ENGINE = AggregatingMergeTree\n"
            f"PARTITION BY {self.partition_by}\n"
            f"ORDER BY ({self.order_by})\n"
            f"{ttl}"
            f"SETTINGS non_replicated_deduplication_window = {DEDUP_WINDOW}, {self.settings()}"
        )
        view = (
            f"CREATE MATERIALIZED VIEW IF NOT EXISTS {self.name} TO {self.target} AS\n{self.select}"
        )
        return table, view

    def select_over(self, table: str) -> str:
        """The view's SELECT reading `table` (same columns as its source) instead of the source:
        how a batch twin is built from staged curated rows with the realtime expressions."""
        clause = f"FROM {self.source}"
        if self.select.count(clause) != 1:
            raise ValueError(f"{self.name}: its SELECT does not read {self.source} once")
        return self.select.replace(clause, f"FROM {table}")


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


def _state(argument: str, condition: str | None = None) -> str:
    """The -State (or -StateIf) call of the distinct-count function on `argument`."""
    function, params = DISTINCT.split("(", 1)
    if condition is None:
        return f"{function}State({params}({argument})"
    return f"{function}StateIf({params}({argument}, {condition})"


def _sum(kind: str = "UInt64") -> str:
    return f"SimpleAggregateFunction(sum, {kind})"


def funnel_step_flags() -> list[str]:
    """One 0/1 expression per funnel step: the session has every step up to this one."""
    flags, reached = [], []
    for count in FUNNEL_STEP_COUNTS:
        reached.append(f"{count} > 0")
        flags.append(" AND ".join(reached))
    return flags


def _funnel_step_counts() -> str:
    return ",\n    ".join(
        f"toUInt64(countIf({flag})) AS reached_{step}"
        for step, flag in zip(FUNNEL_STEPS, funnel_step_flags(), strict=True)
    )


def _ingestion(source: str) -> MaterializedView:
    """Per table and ingestion second: rows, newest event, and a lag sketch (ingested - event)."""
    return MaterializedView(
        name=f"{source.removesuffix('_realtime')}_ingestion_mv",
        source=source,
        into="ingestion_agg",
        columns=(
            ("table", _LOW),
            ("second", "DateTime('UTC')"),
            ("rows", _sum()),
            ("newest", f"SimpleAggregateFunction(max, {_TIME})"),
            ("lag_ms", _agg(f"quantileDD({LAG_ACCURACY}, 0.95)", "Int64")),
        ),
        order_by="table, second",
        partition_by="toYYYYMMDD(second)",
        ttl=f"second + INTERVAL {INGESTION_TTL_DAYS} DAY",
        # One group per insert (ingested_at is one DEFAULT per block): little work per row.
        select=f"""SELECT
    '{source}' AS table,
    toDateTime(ingested_at, 'UTC') AS second,
    toUInt64(count()) AS rows,
    max(timestamp) AS newest,
    quantileDDState({LAG_ACCURACY}, 0.95)(dateDiff('millisecond', timestamp, ingested_at)) AS lag_ms
FROM {source}
GROUP BY second""",  # noqa: S608
    )


MATERIALIZED_VIEWS: Final[tuple[MaterializedView, ...]] = (
    MaterializedView(
        name="user_activity_summary_mv",
        source="user_events_realtime",
        columns=(
            ("minute", "DateTime('UTC')"),
            ("event_type", _LOW),
            ("user_tier", _LOW),
            ("device_type", _LOW),
            ("events", _sum()),
            ("users", _agg(DISTINCT, "UUID")),
        ),
        order_by="minute, event_type, user_tier, device_type",
        partition_by="toYYYYMM(minute)",
        select=f"""SELECT
    toStartOfMinute(timestamp) AS minute,
    event_type,
    user_tier,
    device_type,
    toUInt64(count()) AS events,
    {_state("user_id")} AS users
FROM user_events_realtime
GROUP BY minute, event_type, user_tier, device_type""",  # noqa: S608
    ),
    MaterializedView(
        name="conversion_funnel_mv",
        source="user_sessions_realtime",
        columns=(
            ("day", "Date"),
            ("user_tier", _LOW),
            ("device_type", _LOW),
            ("sessions", _sum()),
            *((f"reached_{step}", _sum()) for step in FUNNEL_STEPS),
        ),
        order_by="day, user_tier, device_type",
        partition_by="toYYYYMM(day)",
        # Computed once per closed session from its per-type counts, never re-merged per session.
        select=f"""SELECT
    toDate(session_start) AS day,
    user_tier,
    device_type,
    toUInt64(count()) AS sessions,
    {_funnel_step_counts()}
FROM user_sessions_realtime
GROUP BY day, user_tier, device_type""",  # noqa: S608
    ),
    MaterializedView(
        name="product_performance_mv",
        source="user_events_realtime",
        columns=(
            ("day", "Date"),
            ("product_id", "UUID"),
            ("views", _sum()),
            ("add_to_carts", _sum()),
            ("purchases", _sum()),
            ("units", _sum()),
            ("revenue", _sum("Decimal(38, 2)")),
            ("viewers", _agg(DISTINCT, "UUID")),
            ("buyers", _agg(DISTINCT, "UUID")),
        ),
        # Product first in granules of 32 rows: the top-N query reads the distinct-count states
        # of N products only, a few small granules per day instead of every product's. It ranks
        # on the sums' projection, day first in large granules: ranking 10K products over 30
        # days in granules of 32 rows read ~10K granules (~0.2-0.4 s), the projection ~40.
        order_by="product_id, day",
        partition_by="toYYYYMM(day)",
        index_granularity=32,
        projection=Projection(
            "by_day",
            ("day", "product_id", "views", "add_to_carts", "purchases", "units", "revenue"),
            "(day, product_id)",
        ),
        select=f"""SELECT
    toDate(timestamp) AS day,
    assumeNotNull(product_id) AS product_id,
    toUInt64(countIf(event_type = 'product_view')) AS views,
    toUInt64(countIf(event_type = 'add_to_cart')) AS add_to_carts,
    toUInt64(countIf(event_type = 'purchase')) AS purchases,
    toUInt64(sumIf(ifNull(quantity, 0), event_type = 'purchase')) AS units,
    toDecimal128(sumIf(ifNull(amount, 0), event_type = 'purchase'), 2) AS revenue,
    {_state("user_id", "event_type = 'product_view'")} AS viewers,
    {_state("user_id", "event_type = 'purchase'")} AS buyers
FROM user_events_realtime
WHERE product_id IS NOT NULL
GROUP BY day, product_id""",  # noqa: S608
    ),
    MaterializedView(
        name="user_tier_performance_mv",
        source="user_sessions_realtime",
        columns=(
            ("day", "Date"),
            ("user_tier", _LOW),
            ("sessions", _sum()),
            ("converted_sessions", _sum()),
            ("events", _sum()),
            ("purchases", _sum()),
            ("revenue", _sum("Decimal(38, 2)")),
            ("users", _agg(DISTINCT, "UUID")),
            ("avg_duration_s", _agg("avg", "UInt32")),
            ("avg_session_revenue", _agg("avg", "Decimal(10, 2)")),
        ),
        order_by="day, user_tier",
        partition_by="toYYYYMM(day)",
        select=f"""SELECT
    toDate(s.session_start) AS day,
    s.user_tier AS user_tier,
    toUInt64(count()) AS sessions,
    toUInt64(countIf(s.converted)) AS converted_sessions,
    toUInt64(sum(s.event_count)) AS events,
    toUInt64(sum(s.purchases)) AS purchases,
    toDecimal128(sum(s.revenue), 2) AS revenue,
    {_state("s.user_id")} AS users,
    avgState(s.duration_s) AS avg_duration_s,
    avgState(s.revenue) AS avg_session_revenue
FROM user_sessions_realtime AS s
GROUP BY day, user_tier""",  # noqa: S608
    ),
    MaterializedView(
        name="session_segments_mv",
        source="user_sessions_realtime",
        columns=(
            ("day", "Date"),
            ("user_tier", _LOW),
            ("device_type", _LOW),
            ("browser", _LOW),
            ("sessions", _sum()),
            ("converted_sessions", _sum()),
            ("duration_s", _sum()),
            ("events", _sum()),
            ("revenue", _sum("Decimal(38, 2)")),
        ),
        order_by="day, user_tier, device_type, browser",
        partition_by="toYYYYMM(day)",
        # Sums only: averages and rates are exact as sum / sessions at query time.
        select="""SELECT
    toDate(session_start) AS day,
    user_tier,
    device_type,
    browser,
    toUInt64(count()) AS sessions,
    toUInt64(countIf(converted)) AS converted_sessions,
    toUInt64(sum(duration_s)) AS duration_s,
    toUInt64(sum(event_count)) AS events,
    toDecimal128(sum(revenue), 2) AS revenue
FROM user_sessions_realtime
GROUP BY day, user_tier, device_type, browser""",
    ),
    MaterializedView(
        name="revenue_per_minute_mv",
        source="transactions_realtime",
        columns=(
            ("status", _LOW),
            ("minute", "DateTime('UTC')"),
            ("orders", _sum()),
            ("revenue", _sum("Decimal(38, 2)")),
        ),
        order_by="status, minute",
        partition_by="toYYYYMM(minute)",
        select="""SELECT
    status,
    toStartOfMinute(timestamp) AS minute,
    toUInt64(count()) AS orders,
    toDecimal128(sum(total_amount), 2) AS revenue
FROM transactions_realtime
GROUP BY status, minute""",
    ),
    _ingestion("user_events_realtime"),
    _ingestion("transactions_realtime"),
)

TABLE_NAMES: Final = frozenset(t.name for t in TABLES)


# ---- batch twins: the rollups the API reads, published from the batch layer's curated days ----


def _view(name: str) -> MaterializedView:
    return next(view for view in MATERIALIZED_VIEWS if view.name == name)


@dataclass(frozen=True)
class BatchTwin:
    """The batch twin of a realtime rollup: the same columns, key and aggregate-state types,
    partitioned by the UTC day (`day` is its expression) so one day is replaced atomically,
    no TTL (history past the realtime retention is served from it). Built per day into
    `staging` with the view's own SELECT over the staged curated rows, then swapped in with
    `ALTER TABLE ... REPLACE PARTITION`."""

    view: MaterializedView
    day: str

    @property
    def name(self) -> str:
        return f"{self.view.target.removesuffix('_agg')}_batch"

    @property
    def realtime(self) -> str:
        return self.view.target

    @property
    def staging(self) -> str:
        return f"{self.name}_staging"

    def ddl(self, name: str) -> str:
        """CREATE TABLE of the twin (or of its staging table: same structure, so REPLACE
        PARTITION accepts it)."""
        return (
            f"CREATE TABLE IF NOT EXISTS {name} (\n    {self.view.body()}\n)\n"
            f"ENGINE = AggregatingMergeTree\n"
            f"PARTITION BY {self.day}\n"
            f"ORDER BY ({self.view.order_by})\n"
            f"SETTINGS {self.view.settings()}"
        )


BATCH_TWINS: Final[tuple[BatchTwin, ...]] = (
    BatchTwin(_view("user_activity_summary_mv"), "toDate(minute)"),
    BatchTwin(_view("conversion_funnel_mv"), "day"),
    BatchTwin(_view("product_performance_mv"), "day"),
    BatchTwin(_view("user_tier_performance_mv"), "day"),
    BatchTwin(_view("session_segments_mv"), "day"),
    BatchTwin(_view("revenue_per_minute_mv"), "toDate(minute)"),
)
# Where a day's curated rows wait while the twins are built: the realtime tables' columns, no
# TTL (a published day may be older than the retention), no views attached.
STAGED_SOURCES: Final[dict[str, str]] = {
    table.name: f"batch_staging_{table.name.removesuffix('_realtime')}"
    for table in TABLES
    if table.name != "dead_letters_realtime"
}
PUBLICATIONS: Final = "batch_publications"
# The batch watermark: the last day published complete (epoch when nothing is).
WATERMARK_SQL: Final = f"(SELECT ifNull(maxOrNull(day), toDate(0)) FROM {PUBLICATIONS})"  # noqa: S608


def batch_statements() -> list[str]:
    """Every statement that builds the batch side of the store (idempotent)."""
    statements = []
    for table in TABLES:
        if table.name in STAGED_SOURCES:
            cols = ",\n    ".join(f"`{name}` {kind}" for name, kind in table.columns)
            statements.append(
                f"CREATE TABLE IF NOT EXISTS {STAGED_SOURCES[table.name]} (\n    {cols}\n)\n"
                "ENGINE = MergeTree\nORDER BY tuple()"
            )
    for twin in BATCH_TWINS:
        statements += [twin.ddl(twin.name), twin.ddl(twin.staging)]
    # one row per publication (a history): the newest per day is the day's run
    statements.append(
        f"CREATE TABLE IF NOT EXISTS {PUBLICATIONS} (\n"
        "    `day` Date,\n"
        "    `run_id` String,\n"
        "    `published_at` DateTime64(3, 'UTC'),\n"
        "    `rows` Map(LowCardinality(String), UInt64)\n"
        ")\nENGINE = MergeTree\nORDER BY (day, published_at)"
    )
    return statements


# The speed layer's event-time watermark: after each micro-batch of its records query, the
# newest event time seen so far (its lateness rule; a replay reads the batch before's row).
SPEED_WATERMARKS: Final = "speed_watermarks"
SPEED_WATERMARKS_DDL: Final = (
    f"CREATE TABLE IF NOT EXISTS {SPEED_WATERMARKS} (\n"
    "    `query_id` String,\n"
    "    `batch_id` UInt64,\n"
    "    `newest` Nullable(DateTime64(3, 'UTC')),\n"
    f"    {INGESTED_AT[0]} {INGESTED_AT[1]} DEFAULT now64(3)\n"
    ")\nENGINE = ReplacingMergeTree\nORDER BY (query_id, batch_id)\n"
    f"SETTINGS non_replicated_deduplication_window = {DEDUP_WINDOW}"
)


def schema_statements(retention_days: int) -> list[str]:
    """Every statement that builds the store, in dependency order (tables, targets, views, then
    the batch twins)."""
    statements = [table.ddl(retention_days) for table in TABLES]
    targets = set()
    for view in MATERIALIZED_VIEWS:
        table, mv = view.ddl()
        if view.target not in targets:
            statements.append(table)
            targets.add(view.target)
        statements.append(mv)
    return [*statements, SPEED_WATERMARKS_DDL, *batch_statements()]


def upgrade_statements(tables: dict[str, str]) -> list[str]:
    """What brings a store to this layout, keeping every row: `tables` maps each existing
    table to its CREATE statement. A rollup or twin created before its projection gets it
    (added, then built for the parts it already has: a mutation, waited for); a twin's staging
    table is dropped and created anew (it holds no rows between publications)."""
    statements = []
    for view in MATERIALIZED_VIEWS:
        if view.projection is None:
            continue
        twin = next((t for t in BATCH_TWINS if t.view is view), None)
        for table in (view.target, *((twin.name,) if twin else ())):
            created = tables.get(table)
            if created is None or f"PROJECTION {view.projection.name} " in created:
                continue
            statements += [
                f"ALTER TABLE {table} MODIFY SETTING deduplicate_merge_projection_mode = 'rebuild'",
                f"ALTER TABLE {table} ADD PROJECTION IF NOT EXISTS {view.projection.ddl()[11:]}",
                f"ALTER TABLE {table} MATERIALIZE PROJECTION {view.projection.name} "
                "SETTINGS mutations_sync = 2",
            ]
        if twin and twin.staging in tables and "PROJECTION" not in tables[twin.staging]:
            statements.append(f"DROP TABLE {twin.staging}")
    return statements
