{#-
  Grain: one row per (order_date, status) that has orders (DESIGN: orders). order_date is the UTC date of the
  current version's placed_at, status the current version's status, orders how many current orders fall there
  and amount the sum of their amounts. last_land_seq (audit only, not published) is the newest landing batch
  among all versions of those orders: the model's high-water mark.

  Incremental: a new version (land_seq above the high-water mark) can move its order to another
  (order_date, status) — also a late version older than the current one lands, and changes nothing but the
  mark. The groups to recompute are every (order_date, status) any version of a touched order has: the one the
  order counts in now and the one it counted in before are both among them. Each is recomputed whole from
  stg_orders and replaces the old row (delete+insert on the grain). A group left with no order comes out as a
  row of 0 orders, so that delete+insert removes its old row, and the post-hook then deletes it: the table
  never keeps a (order_date, status) without orders, exactly as a full refresh.
-#}
{{
    config(
        unique_key=['order_date', 'status'],
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        post_hook="delete from {{ this }} where orders = 0",
    )
}}

with

{% if is_incremental() %}
watermark as (

    select {{ evident.land_seq_watermark('last_land_seq') }} as since_land_seq

),

touched_orders as (

    select distinct order_id
    from {{ ref('stg_order_versions') }}
    where land_seq > (select watermark.since_land_seq from watermark)

),

affected as (

    -- every (order_date, status) a version of a touched order has: where it counts now, and where it did
    select distinct
        order_date,
        order_status as status
    from {{ ref('stg_order_versions') }}
    where order_id in (select touched_orders.order_id from touched_orders)

),
{% endif %}

current_orders as (

    select
        stg_orders.order_id,
        stg_orders.order_date,
        stg_orders.order_status as status,
        stg_orders.amount

    from {{ ref('stg_orders') }} as stg_orders
    {% if is_incremental() %}
    inner join affected
        on
            stg_orders.order_date = affected.order_date
            and stg_orders.order_status = affected.status
    {% endif %}

),

order_land_seqs as (

    select
        order_id,
        max(land_seq) as last_land_seq

    from {{ ref('stg_order_versions') }}
    {% if is_incremental() %}
    where order_id in (select current_orders.order_id from current_orders)
    {% endif %}
    group by order_id

),

daily as (

    select
        current_orders.order_date,
        current_orders.status,
        count(*) as orders,
        sum(current_orders.amount) as amount,
        max(order_land_seqs.last_land_seq) as last_land_seq

    from current_orders
    inner join order_land_seqs
        on current_orders.order_id = order_land_seqs.order_id
    group by current_orders.order_date, current_orders.status

),

{% if is_incremental() %}
groups as (

    -- the affected groups, with 0 orders where none is left (removed by the post-hook)
    select
        affected.order_date,
        affected.status,
        coalesce(daily.orders, 0) as orders,
        coalesce(daily.amount, 0) as amount,
        coalesce(daily.last_land_seq, 0) as last_land_seq

    from affected
    left join daily
        on
            affected.order_date = daily.order_date
            and affected.status = daily.status

),
{% else %}
groups as (

    select * from daily

),
{% endif %}

final as (

    select
        cast(order_date as date) as order_date,
        cast(status as varchar) as status,
        cast(orders as bigint) as orders,
        cast(amount as decimal(38, 2)) as amount,
        cast(last_land_seq as bigint) as last_land_seq

    from groups

)

select * from final
