with

source as (

    select * from {{ source('shop', 'user_events') }}

),

renamed as (

    select
        event_id,
        user_id,
        session_id,
        session_key,
        session_start,
        cast(session_start as date) as session_date,
        event_type,
        source.timestamp as event_at,
        cast(source.timestamp as date) as event_date,
        device_type,
        browser,
        ip_address,
        page_url,
        referrer,
        product_id,
        search_query,
        results_count,
        quantity,
        cart_value,
        item_count,
        transaction_id,
        amount,
        user_tier,
        batch_day,
        batch_id,
        loaded_at

    from source

),

flagged as (

    select
        *,
        event_type = 'purchase' as is_purchase,
        user_tier = 'unknown' as is_unknown_user

    from renamed

)

select * from flagged
