{{
    config(
        unique_key='session_date',
        cluster_by=['session_date'],
    )
}}

{%- set steps = var('funnel_steps') %}
{%- set counts = var('event_type_counts') %}

with

sessions as (

    select * from {{ ref('user_sessions') }}
    {% if is_incremental() -%}
    where session_date in ({{ days_to_rebuild([[ref('user_sessions'), 'session_date', 'loaded_through']]) }})
    {%- endif %}

),

funnel as (

    select
        session_date,
        user_tier,
        device_type,
        count(*) as sessions,
        {% for step in steps -%}
        -- sessions with at least one {{ step }} (what the generator's truth counts)
        count_if({{ counts[step] }} > 0) as sessions_with_{{ step }},
        {% endfor -%}
        {% for step in steps -%}
        -- sessions with every step up to {{ step }} (what the serving store's funnel counts)
        count_if(
            {%- for earlier in steps[:loop.index] %} {{ counts[earlier] }} > 0{% if not loop.last %} and{% endif %}{% endfor %}
        ) as reached_{{ step }},
        {% endfor -%}
        max(loaded_through) as loaded_through

    from sessions
    group by session_date, user_tier, device_type

),

final as (

    select
        session_date,
        user_tier,
        device_type,
        sessions,
        {% for step in steps -%}
        sessions_with_{{ step }},
        {% endfor -%}
        {% for step in steps -%}
        reached_{{ step }},
        {% endfor -%}
        {{ ratio('reached_purchase', 'sessions') }} as conversion_rate,
        loaded_through

    from funnel

)

select * from final
