{#-
  What "new" means for an incremental model, taken from the data, never from the wall clock: rows of
  raw.app_events with land_seq greater than the value this returns.

  By default that is the high-water mark the model already holds: max(`column`) over {{ this }} (0 when
  empty), read when the model is compiled — which `dbt build` does right before running it — and written into
  the SQL as a literal. A literal, not a scalar subquery: the engines then know how few rows are new (DuckDB's
  planner, estimating a subquery filter as keeping a large share of the table, built its hash joins on the
  whole table instead of on the new rows: 2–3 s instead of 0.6 s per model at 10M events; Postgres picks the
  land_seq index for a literal). In a unit test (`this` is then a fixture, not a table) it stays the scalar
  subquery, evaluated by the engine. The var `evident_since_land_seq` overrides it to reprocess from an
  earlier landing sequence number (a replay).
-#}
{% macro land_seq_watermark(column) -%}
    {%- set since = var('evident_since_land_seq', none) -%}
    {%- if since is not none and since | string | trim != '' -%}
        cast({{ since | int }} as bigint)
    {%- elif execute and model.resource_type == 'model' -%}
        {%- set mark = run_query('select coalesce(max(' ~ column ~ '), 0) from ' ~ this) -%}
        cast({{ mark.columns[0].values()[0] | int }} as bigint)
    {%- else -%}
        (select coalesce(max({{ column }}), 0) from {{ this }})
    {%- endif -%}
{%- endmacro %}


{#-
  True when the var `evident_since_land_seq` asks for a replay: then rows of {{ this }} landed after it are
  taken from staging again and must be left out where a model reads its own old rows. Without a replay every
  row of {{ this }} is at or below the mark by definition, and a filter saying so would only cost a pass.
-#}
{% macro is_replay() -%}
    {%- set since = var('evident_since_land_seq', none) -%}
    {{ return(since is not none and since | string | trim != '') }}
{%- endmacro %}
