{#-
  Grain: one row per event (idempotency key), typed and renamed; no joins, no business logic.

  Deduplication of deliveries happens at landing: idempotency_key is raw.app_events' primary key, so each event
  is one raw row (the first delivery) and this view needs no window (which would stop filters on user_id and
  land_seq from reaching the table). The `unique` test on idempotency_key holds it to that.
-#}
with

source as (

    select * from {{ source('raw', 'app_events') }}

),

renamed as (

    select
        cast(idempotency_key as varchar) as idempotency_key,
        cast(event_id as varchar) as event_id,
        cast(user_id as bigint) as user_id,
        cast(event_ts as timestamp) as event_ts,
        cast(cast(event_ts as timestamp) as date) as event_date,
        cast(event_type as varchar) as event_type,
        cast(value as decimal(18, 2)) as event_value,
        cast(app_version as varchar) as app_version,
        cast(properties as varchar) as properties,
        cast(batch_id as varchar) as batch_id,
        cast(land_seq as bigint) as land_seq,
        cast(contract_id as varchar) as contract_id,
        cast(landed_at as timestamp) as landed_at

    from source

),

final as (

    select * from renamed

)

select * from final
