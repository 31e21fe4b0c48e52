{{
    config(
        unique_key='event_date',
        cluster_by=['event_date', 'event_type'],
    )
}}

{%- set inputs = [
    [ref('stg_shop__events'), 'batch_day', 'loaded_at'],
    [ref('stg_shop__transactions'), 'batch_day', 'loaded_at'],
    [ref('stg_shop__products'), 'snapshot_date', 'loaded_at'],
] %}

with

events as (

    select * from {{ ref('stg_shop__events') }}
    {% if is_incremental() -%}
    where event_date in ({{ days_to_rebuild(inputs) }})
    {%- endif %}

),

transactions as (

    select * from {{ ref('stg_shop__transactions') }}

),

products as (

    select * from {{ ref('stg_shop__products') }}

),

-- purchase <-> transaction (business rule 3), and the product as catalogued that day
joined as (

    select
        events.*,
        transactions.transaction_id is not null as has_transaction,
        transactions.status as transaction_status,
        transactions.total_amount as transaction_total_amount,
        transactions.product_id as transaction_product_id,
        transactions.quantity as transaction_quantity,
        transactions.user_id as transaction_user_id,
        transactions.user_tier as transaction_user_tier,
        transactions.total_adds_up as transaction_total_adds_up,
        products.product_id is not null as has_product,
        products.product_name,
        products.product_category,
        products.product_subcategory,
        products.product_brand,
        greatest(
            events.loaded_at,
            coalesce(transactions.loaded_at, events.loaded_at),
            coalesce(products.loaded_at, events.loaded_at)
        ) as loaded_through

    from events
    left join transactions
        on events.is_purchase
        and transactions.transaction_id = events.transaction_id
    left join products
        on products.product_id = events.product_id
        and products.snapshot_date = events.batch_day

),

validated as (

    select
        *,
        {{ validation_errors([
            ['event_outside_batch_day', "event_date <> batch_day"],
            ['event_before_session_start', "event_at < session_start"],
            ['tier_not_enriched', "user_tier not in ('" ~ var('enriched_tiers') | join("', '") ~ "')"],
            ['unknown_product', "product_id is not null and not has_product"],
            ['purchase_without_transaction', "is_purchase and not has_transaction"],
            ['purchase_transaction_mismatch', "is_purchase and has_transaction and (transaction_product_id <> product_id or transaction_quantity <> quantity or transaction_user_id <> user_id)"],
            ['purchase_amount_differs', "is_purchase and has_transaction and transaction_total_amount <> amount"],
            ['purchase_tier_differs', "is_purchase and has_transaction and transaction_user_tier <> user_tier"],
            ['transaction_total_does_not_add_up', "is_purchase and has_transaction and not transaction_total_adds_up"],
            ['non_positive_amount', "is_purchase and amount <= 0"],
            ['non_positive_cart_value', "event_type = 'checkout_start' and cart_value <= 0"],
        ]) }} as validation_errors

    from joined

),

final as (

    select
        event_id,
        user_id,
        session_id,
        session_key,
        session_start,
        session_date,
        event_type,
        event_at,
        event_date,
        device_type,
        browser,
        ip_address,
        page_url,
        referrer,
        product_id,
        product_name,
        product_category,
        product_subcategory,
        product_brand,
        search_query,
        results_count,
        quantity,
        cart_value,
        item_count,
        transaction_id,
        amount,
        transaction_status,
        transaction_total_amount,
        user_tier,
        is_purchase,
        is_unknown_user,
        has_transaction,
        has_product,
        validation_errors,
        validation_errors is null as is_valid,
        batch_day,
        batch_id,
        loaded_through

    from validated

)

select * from final
