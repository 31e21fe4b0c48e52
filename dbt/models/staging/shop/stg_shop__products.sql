with

source as (

    select * from {{ source('shop', 'products') }}

),

renamed as (

    select
        product_id,
        batch_day as snapshot_date,
        name as product_name,
        category as product_category,
        subcategory as product_subcategory,
        brand as product_brand,
        price as list_price,
        cost as unit_cost,
        is_active,
        created_at,
        updated_at,
        batch_id,
        loaded_at

    from source

)

select * from renamed
