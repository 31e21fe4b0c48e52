{{
    config(
        unique_key='session_date',
        cluster_by=['session_date', 'user_tier'],
    )
}}

with

{% if is_incremental() -%}
-- a session belongs to the day it started: new events of day D can change sessions of D - 1
rebuilt_session_days as (

    select distinct session_date
    from {{ ref('events_cleaned') }}
    where event_date in ({{ days_to_rebuild([[ref('events_cleaned'), 'event_date', 'loaded_through']]) }})

),

{% endif -%}
events as (

    select * from {{ ref('events_cleaned') }}
    {% if is_incremental() -%}
    where session_date in (select session_date from rebuilt_session_days)
    {%- endif %}

),

sessions as (

    select
        session_key,
        min(session_id) as session_id,
        min(user_id) as user_id,
        min(event_at) as session_start,
        max(event_at) as session_end,
        count(*) as event_count,
        {% for event_type, column in var('event_type_counts').items() -%}
        count_if(event_type = '{{ event_type }}') as {{ column }},
        {% endfor -%}
        cast(coalesce(sum(case when is_purchase then quantity end), 0) as bigint) as items,
        {{ gross_bookings("case when is_purchase then transaction_total_amount end") }} as gross_bookings,
        {{ revenue("transaction_total_amount", "transaction_status") }} as revenue,
        min(device_type) as device_type,
        min(browser) as browser,
        {{ first_by('user_tier', 'event_at') }} as user_tier,
        max(loaded_through) as loaded_through

    from events
    group by session_key

),

final as (

    select
        session_key,
        session_id,
        user_id,
        cast(session_start as date) as session_date,
        session_start,
        session_end,
        cast(floor(({{ epoch_ms('session_end') }} - {{ epoch_ms('session_start') }}) / 1000) as bigint) as duration_s,
        event_count,
        {% for column in var('event_type_counts').values() -%}
        {{ column }},
        {% endfor -%}
        items,
        gross_bookings,
        revenue,
        device_type,
        browser,
        user_tier,
        purchases > 0 as converted,
        loaded_through

    from sessions

)

select * from final
