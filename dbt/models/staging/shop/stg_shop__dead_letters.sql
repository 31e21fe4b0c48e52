with

source as (

    select * from {{ source('shop', 'dead_letters') }}

),

renamed as (

    select
        source_topic,
        source_partition,
        source_offset,
        kafka_timestamp as received_at,
        event_time as event_at,
        reason,
        event_type,
        detail,
        batch_day,
        batch_id,
        loaded_at

    from source

)

select * from renamed
