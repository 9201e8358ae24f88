-- A session ends at or after it starts and has at least one event; revenue is never negative, and only a
-- session with a purchase has revenue. (Sessions with events landed after EVIDENT_CHECK_SINCE_LAND_SEQ.)
select *
from {{ ref('fct_sessions') }}
where last_land_seq > {{ env_var('EVIDENT_CHECK_SINCE_LAND_SEQ', '0') | int }}
    and (
        session_end < session_start
        or event_count < 1
        or revenue < 0
        or (revenue > 0 and not has_purchase)
    )
