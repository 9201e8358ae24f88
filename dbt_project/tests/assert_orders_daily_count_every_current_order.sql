-- fct_orders_daily counts every current order exactly once: the sum of `orders` equals the number of orders
-- in stg_orders (one row per order), and the sum of `amount` their amounts; per (order_date, status) as well.
-- Whole tables (a few rows per day), so no check window.
with

staged as (

    select
        order_date,
        order_status as status,
        count(*) as orders,
        sum(amount) as amount

    from {{ ref('stg_orders') }}
    group by order_date, order_status

),

reported as (

    select
        order_date,
        status,
        orders,
        amount

    from {{ ref('fct_orders_daily') }}

)

select
    staged.orders as staged_orders,
    reported.orders as reported_orders,
    staged.amount as staged_amount,
    reported.amount as reported_amount,
    coalesce(staged.order_date, reported.order_date) as order_date,
    coalesce(staged.status, reported.status) as status

from staged
full outer join reported
    on
        staged.order_date = reported.order_date
        and staged.status = reported.status
where staged.orders is null
    or reported.orders is null
    or staged.orders <> reported.orders
    or staged.amount <> reported.amount
