{#-
  What "new" means for an incremental model, taken from the data, never from the wall clock: rows of
  raw.app_events with land_seq greater than the value this returns.

  By default that is the high-water mark the model already holds: max(`column`) over {{ this }} (0 when
  empty). It is an expression (a scalar subquery), so it is evaluated by the engine when the model runs and a
  unit test can feed `this` as an input. The var `evident_since_land_seq` overrides it to reprocess from an
  earlier landing sequence number (a replay).
-#}
{% macro land_seq_watermark(column) -%}
    {%- set since = var('evident_since_land_seq', none) -%}
    {%- if since is not none and since | string | trim != '' -%}
        cast({{ since | int }} as bigint)
    {%- else -%}
        (select coalesce(max({{ column }}), 0) from {{ this }})
    {%- endif -%}
{%- endmacro %}
