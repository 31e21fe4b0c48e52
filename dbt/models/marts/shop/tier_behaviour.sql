{{
    config(
        unique_key='activity_date',
        cluster_by=['activity_date'],
    )
}}

{#- Events by their day and tier at event time, sessions by the day they started and the tier
    at their first event, transactions by their day and tier. -#}
{%- set inputs = [
    [ref('events_cleaned'), 'event_date', 'loaded_through'],
    [ref('user_sessions'), 'session_date', 'loaded_through'],
    [ref('stg_shop__transactions'), 'batch_day', 'loaded_at'],
] %}

with

{% if is_incremental() -%}
rebuilt_days as ({{ days_to_rebuild(inputs) }}),

{% endif -%}
events as (

    select
        event_date as activity_date,
        user_tier,
        count(*) as events,
        count(distinct user_id) as users,
        {% for event_type, column in var('event_type_counts').items() -%}
        count_if(event_type = '{{ event_type }}') as {{ column }},
        {% endfor -%}
        max(loaded_through) as loaded_through

    from {{ ref('events_cleaned') }}
    {% if is_incremental() -%}
    where event_date in (select rebuilt_day from rebuilt_days)
    {%- endif %}
    group by event_date, user_tier

),

sessions as (

    select
        session_date as activity_date,
        user_tier,
        count(*) as sessions,
        count_if(converted) as converted_sessions,
        sum(duration_s) as session_seconds,
        max(loaded_through) as loaded_through

    from {{ ref('user_sessions') }}
    {% if is_incremental() -%}
    where session_date in (select rebuilt_day from rebuilt_days)
    {%- endif %}
    group by session_date, user_tier

),

transactions as (

    select
        transaction_date as activity_date,
        user_tier,
        count(*) as transactions,
        count_if(is_completed) as completed_transactions,
        {{ gross_bookings('total_amount') }} as gross_bookings,
        {{ revenue('total_amount', 'status') }} as revenue,
        {{ refunds('total_amount', 'status') }} as refunds,
        max(loaded_at) as loaded_through

    from {{ ref('stg_shop__transactions') }}
    {% if is_incremental() -%}
    where transaction_date in (select rebuilt_day from rebuilt_days)
    {%- endif %}
    group by transaction_date, user_tier

),

keys as (

    select activity_date, user_tier from events
    union
    select activity_date, user_tier from sessions
    union
    select activity_date, user_tier from transactions

),

final as (

    select
        keys.activity_date,
        keys.user_tier,
        coalesce(events.events, 0) as events,
        coalesce(events.users, 0) as users,
        {% for column in var('event_type_counts').values() -%}
        coalesce(events.{{ column }}, 0) as {{ column }},
        {% endfor -%}
        coalesce(sessions.sessions, 0) as sessions,
        coalesce(sessions.converted_sessions, 0) as converted_sessions,
        {{ ratio('sessions.converted_sessions', 'sessions.sessions') }} as conversion_rate,
        {{ ratio('sessions.session_seconds', 'sessions.sessions') }} as avg_session_duration_s,
        coalesce(transactions.transactions, 0) as transactions,
        coalesce(transactions.completed_transactions, 0) as completed_transactions,
        coalesce(transactions.gross_bookings, 0) as gross_bookings,
        coalesce(transactions.revenue, 0) as revenue,
        coalesce(transactions.refunds, 0) as refunds,
        {{ ratio('transactions.revenue', 'events.users') }} as revenue_per_user,
        greatest(
            coalesce(events.loaded_through, sessions.loaded_through, transactions.loaded_through),
            coalesce(sessions.loaded_through, events.loaded_through, transactions.loaded_through),
            coalesce(transactions.loaded_through, events.loaded_through, sessions.loaded_through)
        ) as loaded_through

    from keys
    left join events
        on events.activity_date = keys.activity_date and events.user_tier = keys.user_tier
    left join sessions
        on sessions.activity_date = keys.activity_date and sessions.user_tier = keys.user_tier
    left join transactions
        on transactions.activity_date = keys.activity_date
        and transactions.user_tier = keys.user_tier

)

select * from final
