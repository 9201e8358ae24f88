{#-
  The only places where DuckDB and Postgres SQL differ. Models call these; each dispatches to
  `postgres__…` or `duckdb__…` (`default__…` is the Postgres/ANSI form).
-#}

{#- Microseconds from `earlier` to `later` (both `timestamp`), as an exact bigint. -#}
{% macro microseconds_between(earlier, later) -%}
    {{ return(adapter.dispatch('microseconds_between', 'evident')(earlier, later)) }}
{%- endmacro %}

{% macro default__microseconds_between(earlier, later) -%}
    cast(round((extract(epoch from {{ later }}) - extract(epoch from {{ earlier }})) * 1000000) as bigint)
{%- endmacro %}

{% macro duckdb__microseconds_between(earlier, later) -%}
    date_diff('microsecond', {{ earlier }}, {{ later }})
{%- endmacro %}


{#- A `timestamp` (UTC) as text `YYYY-MM-DDTHH:MM:SS.ffffffZ`, always with six fractional digits. -#}
{% macro iso_timestamp_text(ts) -%}
    {{ return(adapter.dispatch('iso_timestamp_text', 'evident')(ts)) }}
{%- endmacro %}

{% macro default__iso_timestamp_text(ts) -%}
    to_char({{ ts }}, 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
{%- endmacro %}

{% macro duckdb__iso_timestamp_text(ts) -%}
    strftime({{ ts }}, '%Y-%m-%dT%H:%M:%S.%fZ')
{%- endmacro %}


{#-
  session_id: md5 (hex, same digest on both engines) of `<user_id>|<session_start as iso_timestamp_text>`,
  e.g. md5('42|2024-01-02T03:04:05.000000Z'). Deterministic in (user_id, session_start), so a session keeps its
  id across incremental runs, full refreshes, replays and engines.
-#}
{% macro session_id(user_id, session_start) -%}
    cast(md5(cast({{ user_id }} as varchar) || '|' || {{ evident.iso_timestamp_text(session_start) }}) as varchar)
{%- endmacro %}


{#-
  numerator / denominator rounded half away from zero to `scale` places, as an exact decimal(38, scale);
  0 when the denominator is 0. Both arguments are non-negative integers. (DuckDB divides decimals in
  floating point, so it gets integer arithmetic; Postgres numeric division is exact.)
-#}
{% macro rounded_ratio(numerator, denominator, scale=6) -%}
    {{ return(adapter.dispatch('rounded_ratio', 'evident')(numerator, denominator, scale)) }}
{%- endmacro %}

{% macro default__rounded_ratio(numerator, denominator, scale) -%}
    case
        when {{ denominator }} = 0 then cast(0 as decimal(38, {{ scale }}))
        else cast(round(cast({{ numerator }} as numeric) / {{ denominator }}, {{ scale }}) as decimal(38, {{ scale }}))
    end
{%- endmacro %}

{% macro duckdb__rounded_ratio(numerator, denominator, scale) -%}
    {%- set unit = 10 ** scale -%}
    case
        when {{ denominator }} = 0 then cast(0 as decimal(38, {{ scale }}))
        else cast(
            cast((2 * cast({{ numerator }} as hugeint) * {{ unit }} + {{ denominator }}) // (2 * cast({{ denominator }} as hugeint)) as decimal(38, 0))
            * cast('0.{{ "0" * (scale - 1) }}1' as decimal(38, {{ scale }}))
            as decimal(38, {{ scale }}))
    end
{%- endmacro %}


{#-
  The `indexes` config for a model: Postgres gets them (incremental runs read touched users / dates through
  them); DuckDB gets none. DuckDB's ART indexes are not used by its joins and IN filters, and they make
  deletes expensive: deleting 10% of 10M rows of int_sessionised_events and committing took 47 s with its
  three indexes and 0.2 s without (measured here).
-#}
{% macro index_config(indexes) -%}
    {{ return(adapter.dispatch('index_config', 'evident')(indexes)) }}
{%- endmacro %}

{% macro default__index_config(indexes) -%}
    {{ return(indexes) }}
{%- endmacro %}

{% macro duckdb__index_config(indexes) -%}
    {{ return([]) }}
{%- endmacro %}


{#-
  A post_hook for the big incremental tables: on Postgres, `analyze` the table when it has no planner
  statistics yet — right after it was (re)built whole (first build, --full-refresh: a new table). Without them
  the planner guesses a third of the rows for `last_land_seq > N` and the next incremental run's reads and data
  tests scan the table instead of using its land_seq indexes (measured: the check-window tests on fct_sessions
  at 1M events, 54 → 4 ms each); autovacuum would analyze it, but only some time later. Later incremental runs
  need no new statistics: a high-water mark above the histogram is estimated from the index's actual end.
  DuckDB: nothing (it keeps its own statistics as it writes).
-#}
{% macro analyze_if_without_statistics() -%}
    {{ return(adapter.dispatch('analyze_if_without_statistics', 'evident')()) }}
{%- endmacro %}

{% macro default__analyze_if_without_statistics() -%}
    {%- if execute -%}
        {%- set stats = run_query(
            "select 1 from pg_catalog.pg_stats where schemaname = '" ~ this.schema
            ~ "' and tablename = '" ~ this.identifier ~ "' limit 1") -%}
        {%- if stats.rows | length == 0 -%}
            analyze {{ this }}
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}

{% macro duckdb__analyze_if_without_statistics() -%}
{%- endmacro %}


{#-
  True when no row of `relation` has `column` = `value` (an outer query's expression). Postgres: a `limit 1`
  subquery, which it runs as one index probe per outer row (a `not exists` it plans as an anti join that hashes
  the whole relation: 231 vs 15 ms for the relationships test at 1M events). DuckDB: `not exists`, which it
  decorrelates into one hash anti join (a correlated `limit 1` took 0.40 s instead of 0.05 s for 90k values
  against 10M rows, measured here).
-#}
{% macro no_row_matches(relation, column, value) -%}
    {{ return(adapter.dispatch('no_row_matches', 'evident')(relation, column, value)) }}
{%- endmacro %}

{% macro default__no_row_matches(relation, column, value) -%}
    (select 1 from {{ relation }} as matching where matching.{{ column }} = {{ value }} limit 1) is null
{%- endmacro %}

{% macro duckdb__no_row_matches(relation, column, value) -%}
    not exists (select 1 from {{ relation }} as matching where matching.{{ column }} = {{ value }})
{%- endmacro %}


{#-
  Ends a lateral subquery that should run once per outer row, as an index probe. Postgres: `offset 0`, which
  keeps the planner from pulling the subquery up into a join — pulled up, it hashed all of the big table for a
  few thousand matches (int_sessionised_events, 10M events + 1%: two seq scans and hash joins over 10M rows,
  7.5 s; as probes 0.69 s). DuckDB: nothing; it decorrelates the lateral join into a hash join, as it planned
  the join before.
-#}
{% macro per_row_probe() -%}
    {{ return(adapter.dispatch('per_row_probe', 'evident')()) }}
{%- endmacro %}

{% macro default__per_row_probe() -%}
    offset 0
{%- endmacro %}

{% macro duckdb__per_row_probe() -%}
{%- endmacro %}


{#-
  Ends a big incremental model's select: the order its rows are written in. DuckDB: `order by` the column,
  so that each row group holds a narrow range of it and the zonemaps skip all but a few row groups for the
  incremental run's reads and deletes, which are bounded by time but not served by an index
  (int_sessionised_events at 10M events + 1%, written in event_ts order: the replace's delete 0.53 -> 0.01 s
  of CPU, the read of the affected sessions' events 0.41 -> 0.01 s; measured here). A full refresh pays one
  sort for it. Postgres: nothing; its reads are index probes, for which the heap's order hardly matters.
-#}
{% macro physical_order(column) -%}
    {{ return(adapter.dispatch('physical_order', 'evident')(column)) }}
{%- endmacro %}

{% macro default__physical_order(column) -%}
{%- endmacro %}

{% macro duckdb__physical_order(column) -%}
    order by {{ column }}
{%- endmacro %}


{#-
  True when a session of `sessions` (a relation of sessions: user_id, session_start, session_end) that starts
  before the outer query's session `session` ends less than `gap_seconds` before `session`'s start (or after
  it): the session before it is too close. Postgres: the session right before it, found by one backward probe
  of the (user_id, session_start) index (`order by … desc limit 1`). DuckDB, which has no index to probe and
  joined every earlier session of the user to each changed one (0.65 s for 90k sessions of heavy users, 8M
  sessions, measured here): whether any earlier session ends within the gap of the start, a range condition
  on session_end that the zonemaps of a table in session_start order (physical_order) narrow to a few row
  groups (0.03 s). The two agree: if the session right before is too close it is such a session, and if any
  earlier one is, some consecutive pair of sessions up to this one is too close.
-#}
{% macro previous_session_within_gap(sessions, session, gap_seconds) -%}
    {{ return(adapter.dispatch('previous_session_within_gap', 'evident')(sessions, session, gap_seconds)) }}
{%- endmacro %}

{% macro default__previous_session_within_gap(sessions, session, gap_seconds) -%}
    coalesce((
        select {{ evident.microseconds_between('earlier.session_end', session ~ '.session_start') }}
        from {{ sessions }} as earlier
        where
            earlier.user_id = {{ session }}.user_id
            and earlier.session_start < {{ session }}.session_start
        order by earlier.session_start desc
        limit 1
    ) <= {{ (gap_seconds | int) * 1000000 }}, false)
{%- endmacro %}

{% macro duckdb__previous_session_within_gap(sessions, session, gap_seconds) -%}
    exists (
        select 1
        from {{ sessions }} as earlier
        where
            earlier.user_id = {{ session }}.user_id
            and earlier.session_start < {{ session }}.session_start
            and earlier.session_end >= {{ session }}.session_start - interval '{{ gap_seconds | int }} seconds'
    )
{%- endmacro %}
