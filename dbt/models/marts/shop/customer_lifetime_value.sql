{{
    config(
        materialized='table',
        cluster_by=['current_tier'],
    )
}}

{#- A lifetime is all of history: a table rebuilt whole each run (one scan of the marts'
    inputs), never an incremental model that could miss a re-loaded day. -#}

with

events as (

    select
        user_id,
        min(event_at) as first_seen_at,
        max(event_at) as last_seen_at,
        count(distinct event_date) as active_days,
        count(*) as events,
        {{ last_by('user_tier', 'event_at') }} as current_tier

    from {{ ref('events_cleaned') }}
    group by user_id

),

sessions as (

    select
        user_id,
        count(*) as sessions,
        count_if(converted) as converted_sessions

    from {{ ref('user_sessions') }}
    group by user_id

),

transactions as (

    select
        user_id,
        min(case when is_completed then transaction_at end) as first_purchase_at,
        count(*) as transactions,
        count_if(is_completed) as completed_transactions,
        {{ gross_bookings('total_amount') }} as gross_bookings,
        {{ revenue('total_amount', 'status') }} as revenue,
        {{ refunds('total_amount', 'status') }} as refunds

    from {{ ref('stg_shop__transactions') }}
    group by user_id

),

final as (

    select
        events.user_id,
        events.current_tier,
        events.first_seen_at,
        events.last_seen_at,
        transactions.first_purchase_at,
        events.active_days,
        events.events,
        coalesce(sessions.sessions, 0) as sessions,
        coalesce(sessions.converted_sessions, 0) as converted_sessions,
        coalesce(transactions.transactions, 0) as transactions,
        coalesce(transactions.completed_transactions, 0) as completed_transactions,
        coalesce(transactions.gross_bookings, 0) as gross_bookings,
        coalesce(transactions.revenue, 0) as revenue,
        coalesce(transactions.refunds, 0) as refunds,
        {{ ratio('transactions.revenue', 'transactions.completed_transactions') }} as average_order_value

    from events
    left join sessions on sessions.user_id = events.user_id
    left join transactions on transactions.user_id = events.user_id

)

select * from final
