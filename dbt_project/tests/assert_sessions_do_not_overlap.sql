-- A user's sessions neither overlap nor touch: each next session starts more than the session gap
-- (1800 s) after the previous one ended (otherwise they would be one session), and no two share a start.
-- Without a check mark (EVIDENT_CHECK_SINCE_LAND_SEQ 0: a full refresh) every consecutive pair of every user.
-- With one, the pairs a build can have changed: each session landed after the mark (last_land_seq) with the
-- session before it (evident.previous_session_within_gap) and the one after it, each found by one index
-- probe on Postgres (user_id, session_start) rather than by ordering all of the user's sessions. That is
-- every pair that can fail: a pair of two older sessions was checked when the later of them was built, and a
-- session removed (merged into a new one) only ever leaves sessions further apart.
{%- set gap_microseconds = (var('evident_session_gap_seconds') | int) * 1000000 %}
{%- if evident.check_since_land_seq() == 0 %}

with

ordered as (

    select
        user_id,
        session_id,
        session_end,
        lead(session_start) over (partition by user_id order by session_start) as next_session_start

    from {{ ref('fct_sessions') }}

)

select *
from ordered
where next_session_start is not null
    and {{ evident.microseconds_between('session_end', 'next_session_start') }} <= {{ gap_microseconds }}
{%- else %}

with

changed as (

    select
        user_id,
        session_id,
        session_start,
        session_end

    from {{ ref('fct_sessions') }}
    where {{ evident.in_check_window('last_land_seq') }}

),

with_neighbours as (

    select
        changed.user_id,
        changed.session_id,
        changed.session_start,
        changed.session_end,
        {{ evident.previous_session_within_gap(ref('fct_sessions'), 'changed', var('evident_session_gap_seconds')) }}
            as previous_session_within_gap,
        (
            select min(later.session_start)
            from {{ ref('fct_sessions') }} as later
            where
                later.user_id = changed.user_id
                and later.session_start > changed.session_start
        ) as next_session_start,
        -- a second session with the same start (an exact duplicate row is the unique test's to find);
        -- `exists`, not a count, which DuckDB decorrelated into a count of every session in the table
        exists (
            select 1
            from {{ ref('fct_sessions') }} as same_start
            where
                same_start.user_id = changed.user_id
                and same_start.session_start = changed.session_start
                and same_start.session_id <> changed.session_id
        ) as shares_start

    from changed

)

select *
from with_neighbours
where shares_start
    or (
        next_session_start is not null
        and {{ evident.microseconds_between('session_end', 'next_session_start') }} <= {{ gap_microseconds }}
    )
    or previous_session_within_gap
{%- endif %}
