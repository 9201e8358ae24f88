{#-
  Grain: one row per order — its current version, the one with the greatest updated_at (DESIGN: orders).

  Every version of an order is a raw row (the key is order_id ␟ updated_at), so two versions never share an
  updated_at; versions arrive in any order and any delivery, and the current one is whichever is latest in
  time, not in arrival. A view: it always reflects every version landed so far.
-#}
with

source as (

    select * from {{ source('raw', 'orders') }}

),

versions as (

    select
        cast(order_id as varchar) as order_id,
        cast(user_id as bigint) as user_id,
        cast(status as varchar) as order_status,
        cast(amount as decimal(14, 2)) as amount,
        cast(currency as varchar) as currency,
        cast(placed_at as timestamp) as placed_at,
        cast(cast(placed_at as timestamp) as date) as order_date,
        cast(updated_at as timestamp) as updated_at,
        cast(is_gift as boolean) as is_gift,
        cast(idempotency_key as varchar) as idempotency_key,
        cast(land_seq as bigint) as land_seq,
        count(*) over (partition by order_id) as versions_landed,
        row_number() over (partition by order_id order by updated_at desc) as recency

    from source

),

final as (

    select
        order_id,
        user_id,
        order_status,
        amount,
        currency,
        placed_at,
        order_date,
        updated_at,
        is_gift,
        versions_landed,
        idempotency_key,
        land_seq

    from versions
    where recency = 1

)

select * from final
