with

source as (

    select * from {{ source('shop', 'transactions') }}

),

renamed as (

    select
        transaction_id,
        user_id,
        session_id,
        product_id,
        quantity,
        unit_price,
        discount_amount,
        tax_amount,
        total_amount,
        currency,
        payment_method,
        status,
        source.timestamp as transaction_at,
        cast(source.timestamp as date) as transaction_date,
        user_tier,
        batch_day,
        batch_id,
        loaded_at

    from source

),

flagged as (

    select
        *,
        status = 'completed' as is_completed,
        status = 'refunded' as is_refunded,
        total_amount = unit_price * quantity - discount_amount + tax_amount as total_adds_up

    from renamed

)

select * from flagged
