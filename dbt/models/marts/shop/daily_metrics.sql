{{
    config(
        unique_key='metric_date',
        cluster_by=['metric_date'],
    )
}}

{%- set inputs = [
    [ref('events_cleaned'), 'event_date', 'loaded_through'],
    [ref('user_sessions'), 'session_date', 'loaded_through'],
    [ref('stg_shop__transactions'), 'batch_day', 'loaded_at'],
    [ref('stg_shop__dead_letters'), 'batch_day', 'loaded_at'],
] %}

with

{% if is_incremental() -%}
rebuilt_days as ({{ days_to_rebuild(inputs) }}),

{% endif -%}
events as (

    select
        event_date as metric_date,
        count(*) as events,
        count_if(not is_valid) as events_breaking_rules,
        count(distinct user_id) as users,
        {% for event_type, column in var('event_type_counts').items() -%}
        count_if(event_type = '{{ event_type }}') as {{ column }},
        {% endfor -%}
        max(loaded_through) as loaded_through

    from {{ ref('events_cleaned') }}
    {% if is_incremental() -%}
    where event_date in (select rebuilt_day from rebuilt_days)
    {%- endif %}
    group by event_date

),

sessions as (

    select
        session_date as metric_date,
        count(*) as sessions,
        count_if(converted) as converted_sessions,
        sum(duration_s) as session_seconds,
        max(loaded_through) as loaded_through

    from {{ ref('user_sessions') }}
    {% if is_incremental() -%}
    where session_date in (select rebuilt_day from rebuilt_days)
    {%- endif %}
    group by session_date

),

transactions as (

    select
        transaction_date as metric_date,
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
    group by transaction_date

),

dead_letters as (

    select
        batch_day as metric_date,
        count(*) as dead_letters,
        {% for reason in var('rejection_reasons') -%}
        count_if(reason = '{{ reason }}') as dead_letters_{{ reason }},
        {% endfor -%}
        max(loaded_at) as loaded_through

    from {{ ref('stg_shop__dead_letters') }}
    {% if is_incremental() -%}
    where batch_day in (select rebuilt_day from rebuilt_days)
    {%- endif %}
    group by batch_day

),

days as (

    select metric_date from events
    union
    select metric_date from sessions
    union
    select metric_date from transactions
    union
    select metric_date from dead_letters

),

final as (

    select
        days.metric_date,
        coalesce(events.events, 0) as events,
        coalesce(events.events_breaking_rules, 0) as events_breaking_rules,
        coalesce(events.users, 0) as users,
        {% for column in var('event_type_counts').values() -%}
        coalesce(events.{{ column }}, 0) as {{ column }},
        {% endfor -%}
        coalesce(sessions.sessions, 0) as sessions,
        coalesce(sessions.converted_sessions, 0) as converted_sessions,
        {{ ratio('sessions.converted_sessions', 'sessions.sessions') }} as session_conversion_rate,
        {{ ratio('events.purchases', 'events.page_views') }} as purchases_per_page_view,
        {{ ratio('sessions.session_seconds', 'sessions.sessions') }} as avg_session_duration_s,
        coalesce(transactions.transactions, 0) as transactions,
        coalesce(transactions.completed_transactions, 0) as completed_transactions,
        coalesce(transactions.gross_bookings, 0) as gross_bookings,
        coalesce(transactions.revenue, 0) as revenue,
        coalesce(transactions.refunds, 0) as refunds,
        {{ ratio('transactions.revenue', 'transactions.completed_transactions') }} as average_order_value,
        {{ ratio('transactions.revenue', 'events.users') }} as revenue_per_user,
        coalesce(dead_letters.dead_letters, 0) as dead_letters,
        {% for reason in var('rejection_reasons') -%}
        coalesce(dead_letters.dead_letters_{{ reason }}, 0) as dead_letters_{{ reason }},
        {% endfor -%}
        {{ ratio('dead_letters.dead_letters', 'coalesce(events.events, 0) + dead_letters.dead_letters') }} as dead_letter_rate,
        greatest(
            coalesce(events.loaded_through, {{ timestamp_literal('1900-01-01 00:00:00') }}),
            coalesce(sessions.loaded_through, {{ timestamp_literal('1900-01-01 00:00:00') }}),
            coalesce(transactions.loaded_through, {{ timestamp_literal('1900-01-01 00:00:00') }}),
            coalesce(dead_letters.loaded_through, {{ timestamp_literal('1900-01-01 00:00:00') }})
        ) as loaded_through

    from days
    left join events on events.metric_date = days.metric_date
    left join sessions on sessions.metric_date = days.metric_date
    left join transactions on transactions.metric_date = days.metric_date
    left join dead_letters on dead_letters.metric_date = days.metric_date

)

select * from final
