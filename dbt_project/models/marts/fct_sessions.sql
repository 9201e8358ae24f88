{#-
  Grain: one row per session (session_id = md5 of user_id | session_start; see macros/cross_engine.sql).

  Incremental: the sessions to recompute are those that now contain an event landed after the high-water mark
  (max last_land_seq here): each is aggregated again from all of its events in int_sessionised_events (an
  index lookup on (user_id, session_start) on Postgres). Landing only extends and merges sessions, so every
  session that changed contains a new event, and every old session it swallowed started within its new
  bounds: the strategy replace_where (macros/incremental_replace.sql) deletes each old session of the user
  whose session_start lies in [session_start, session_end] of a new row — the session itself, the ones merged
  into it — and inserts the new rows. A plain merge on session_id could not remove a merged-away session (its
  id is simply absent from the new rows); other users and the user's other sessions are not touched.
  On Postgres the last_land_seq index serves the data tests, which check the sessions landed after
  EVIDENT_CHECK_SINCE_LAND_SEQ (each was a scan of the whole table).
-#}
{{
    config(
        incremental_strategy='replace_where',
        replaces="existing.user_id = replacement.user_id
            and existing.session_start >= replacement.session_start
            and existing.session_start <= replacement.session_end",
        on_schema_change='fail',
        post_hook="{{ evident.analyze_if_without_statistics() }}",
        indexes=evident.index_config([
            {'columns': ['user_id', 'session_start']},
            {'columns': ['session_start']},
            {'columns': ['last_land_seq']},
        ]),
    )
}}

with

{% if is_incremental() %}
touched_sessions as (

    select distinct
        user_id,
        session_start

    from {{ ref('int_sessionised_events') }}
    where land_seq > {{ evident.land_seq_watermark('last_land_seq') }}

),

sessionised_events as (

    select int_sessionised_events.*

    from {{ ref('int_sessionised_events') }} as int_sessionised_events
    inner join touched_sessions
        on
            int_sessionised_events.user_id = touched_sessions.user_id
            and int_sessionised_events.session_start = touched_sessions.session_start

),
{% else %}
sessionised_events as (

    select * from {{ ref('int_sessionised_events') }}

),
{% endif %}

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
{{ evident.physical_order('session_start') }}
