-- A session ends at or after it starts and has at least one event; revenue is never negative, and only a
-- session with a purchase has revenue. (Sessions with events landed after EVIDENT_CHECK_SINCE_LAND_SEQ.)
select
    session_id,
    user_id,
    session_start,
    session_end,
    event_count,
    has_purchase,
    revenue,
    last_land_seq

from {{ ref('fct_sessions') }}
where {{ evident.in_check_window('last_land_seq') }}
    and (
        session_end < session_start
        or event_count < 1
        or revenue < 0
        or (revenue > 0 and not has_purchase)
    )
