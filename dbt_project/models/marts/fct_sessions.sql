{#-
  Grain: one row per session (session_id = md5 of user_id | session_start; see macros/cross_engine.sql).

  Incremental: every user with an event landed after the high-water mark (max last_land_seq here) gets all
  of their sessions recomputed from int_sessionised_events, and delete+insert on user_id removes every old
  session row of those users first, so sessions that merged, moved or split disappear. A plain merge on
  session_id could not remove them (a superseded session's id is simply absent from the new rows).
-#}
{{
    config(
        unique_key='user_id',
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        indexes=evident.index_config([
            {'columns': ['user_id']},
            {'columns': ['session_start']},
        ]),
    )
}}

with

sessionised_events as (

    select * from {{ ref('int_sessionised_events') }}

    {% if is_incremental() %}
    where
        user_id in (
            select new_events.user_id
            from {{ ref('int_sessionised_events') }} as new_events
            where new_events.land_seq > {{ evident.land_seq_watermark('last_land_seq') }}
        )
    {% endif %}

),

sessions as (

    select
        user_id,
        session_start,
        max(event_ts) as session_end,
        count(*) as event_count,
        bool_or(event_type = 'purchase') as has_purchase,
        coalesce(sum(case when event_type = 'purchase' then event_value end), 0) as revenue,
        max(land_seq) as last_land_seq

    from sessionised_events
    group by user_id, session_start

),

final as (

    select
        {{ evident.session_id('user_id', 'session_start') }} as session_id,
        cast(user_id as bigint) as user_id,
        cast(session_start as timestamp) as session_start,
        cast(session_end as timestamp) as session_end,
        cast(event_count as integer) as event_count,
        cast(has_purchase as boolean) as has_purchase,
        cast(revenue as decimal(18, 2)) as revenue,
        cast(last_land_seq as bigint) as last_land_seq

    from sessions

)

select * from final
