{#-
  Grain: one row per order version (every landed row of raw.orders; the key is order_id ␟ updated_at).

  Where each version of an order placed it: its order date (UTC date of placed_at) and status. An incremental
  fct_orders_daily reads the versions of the orders touched by new batches here, to find every
  (order_date, status) those orders counted in before (stg_orders holds only the current version). A view.
-#}
with

source as (

    select * from {{ source('raw', 'orders') }}

),

final as (

    select
        cast(order_id as varchar) as order_id,
        cast(status as varchar) as order_status,
        cast(cast(placed_at as timestamp) as date) as order_date,
        cast(updated_at as timestamp) as updated_at,
        cast(land_seq as bigint) as land_seq

    from source

)

select * from final
