-- A user's sessions neither overlap nor touch: each next session starts more than the session gap
-- (1800 s) after the previous one ended (otherwise they would be one session).
-- Checks the users with a session containing events landed after EVIDENT_CHECK_SINCE_LAND_SEQ (0 = all).
{%- set gap_microseconds = (var('evident_session_gap_seconds') | int) * 1000000 %}

with

checked_users as (

    select distinct user_id
    from {{ ref('fct_sessions') }}
    where {{ evident.in_check_window('last_land_seq') }}

),

ordered as (

    select
        user_id,
        session_id,
        session_end,
        lead(session_start) over (partition by user_id order by session_start) as next_session_start

    from {{ ref('fct_sessions') }}
    where user_id in (select checked_users.user_id from checked_users)

)

select *
from ordered
where next_session_start is not null
    and {{ evident.microseconds_between('session_end', 'next_session_start') }} <= {{ gap_microseconds }}
