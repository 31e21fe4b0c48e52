{{
    config(
        unique_key='event_date',
        cluster_by=['event_date', 'product_id'],
    )
}}

with

events as (

    select * from {{ ref('events_cleaned') }}
    where product_id is not null
    {% if is_incremental() -%}
    and event_date in ({{ days_to_rebuild([[ref('events_cleaned'), 'event_date', 'loaded_through']]) }})
    {%- endif %}

),

products as (

    select
        event_date,
        product_id,
        max(product_name) as product_name,
        max(product_category) as product_category,
        max(product_subcategory) as product_subcategory,
        max(product_brand) as product_brand,
        count_if(event_type = 'product_view') as views,
        count_if(event_type = 'add_to_cart') as add_to_carts,
        count_if(event_type = 'remove_from_cart') as remove_from_carts,
        count_if(is_purchase) as purchases,
        cast(coalesce(sum(case when is_purchase then quantity end), 0) as bigint) as units,
        {{ gross_bookings("case when is_purchase then transaction_total_amount end") }} as gross_bookings,
        {{ revenue("transaction_total_amount", "transaction_status") }} as revenue,
        count(distinct case when event_type = 'product_view' then user_id end) as viewers,
        count(distinct case when is_purchase then user_id end) as buyers,
        max(loaded_through) as loaded_through

    from events
    group by event_date, product_id

),

final as (

    select
        event_date,
        product_id,
        product_name,
        product_category,
        product_subcategory,
        product_brand,
        views,
        add_to_carts,
        remove_from_carts,
        purchases,
        units,
        gross_bookings,
        revenue,
        viewers,
        buyers,
        {{ ratio('purchases', 'views') }} as purchases_per_view,
        loaded_through

    from products

)

select * from final
