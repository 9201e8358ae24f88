-- A session ends at or after it starts and has at least one event; revenue is never negative, and only a
-- session with a purchase has revenue. (Sessions with events landed after evident_check_since_land_seq.)
select *
from {{ ref('fct_sessions') }}
where last_land_seq > {{ var('evident_check_since_land_seq') }}
    and (
        session_end < session_start
        or event_count < 1
        or revenue < 0
        or (revenue > 0 and not has_purchase)
    )
