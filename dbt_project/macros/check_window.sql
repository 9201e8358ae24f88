{#-
  The check window of the data tests that would otherwise rescan whole tables on every build: only rows
  landed after EVIDENT_CHECK_SINCE_LAND_SEQ. Unset or 0 = every row (land_seq starts at 1). `evident build`
  sets it to the marts' high-water mark from before the run (0 with --full-refresh). It is an environment
  variable, not a var: dbt re-parses the whole project whenever a var changes, and this one changes on every
  run.

  `column` is the landing sequence number to compare: `land_seq` for event rows, `last_land_seq` for mart rows
  (the newest batch among their events).

  In SQL (singular tests):     where {{ evident.in_check_window('last_land_seq') }}
  In a generic test's YAML:    config: {where: "__in_check_window__(last_land_seq)"}
  dbt renders a YAML `where:` at parse time without the project's macros ("the generic test configuration
  parser currently does not support using custom macros"), so YAML writes the placeholder and
  get_where_subquery below expands it with this macro when the test compiles (which also reads the
  environment variable then, so a changed window needs no re-parse).
-#}
{% macro in_check_window(column='land_seq') -%}
    {{ column }} > {{ evident.check_since_land_seq() }}
{%- endmacro %}


{#-
  The check mark itself (an int; 0 = check everything). A test whose narrowed form is a different query, not
  just a filter (e.g. a session's neighbours found by index instead of a window over whole tables), branches
  on it: `{% if evident.check_since_land_seq() == 0 %}` the whole-table form `{% else %}` the narrowed one.
-#}
{% macro check_since_land_seq() -%}
    {{ return(env_var('EVIDENT_CHECK_SINCE_LAND_SEQ', '0') | int) }}
{%- endmacro %}


{#-
  dbt's own get_where_subquery (dbt/include/global_project/macros/materializations/tests/where_subquery.sql),
  which wraps the tested relation of every generic test in `(select * from … where <where>)`, with one
  addition: each `__in_check_window__(<column>)` in the `where` config becomes in_check_window(<column>).
  A placeholder in any other form is a compile error rather than SQL that silently means something else.
-#}
{% macro get_where_subquery(relation) -%}
    {%- set where = config.get('where', '') -%}
    {%- if where -%}
        {%- set expanded = namespace(where=where) -%}
        {%- for column in modules.re.findall('__in_check_window__[(]([A-Za-z0-9_]+)[)]', where) -%}
            {%- set expanded.where = expanded.where | replace(
                '__in_check_window__(' ~ column ~ ')', evident.in_check_window(column)) -%}
        {%- endfor -%}
        {%- if '__in_check_window__' in expanded.where -%}
            {{- exceptions.raise_compiler_error(
                "where: " ~ where ~ " -- write the check window as __in_check_window__(<column>)") -}}
        {%- endif -%}
        {%- set filtered -%}
            (select * from {{ relation }} where {{ expanded.where }}) dbt_subquery
        {%- endset -%}
        {%- do return(filtered) -%}
    {%- else -%}
        {%- do return(relation) -%}
    {%- endif -%}
{%- endmacro %}


{#-
  dbt's relationships test (every non-null `column_name` of the model has a match in `field` of `to`), with one
  change when a check mark is set: the child values (few: the window's rows, distinct) are each looked up in
  the parent (macros/cross_engine.sql, no_row_matches: on Postgres one `limit 1` probe each, served by an index
  on the parent's column — raw.app_events(user_id) for fct_sessions.user_id — instead of hashing the whole
  parent: 231 → 15 ms at 1M events, skewed; the hash grows with the history, the probes with the change).
  Without a mark (full refresh) it is dbt's own anti join, one pass over each side. dbt looks for
  test_relationships in the root project first.
-#}
{% macro default__test_relationships(model, column_name, to, field) -%}
    {%- if evident.check_since_land_seq() == 0 %}
with child as (
    select {{ column_name }} as from_field
    from {{ model }}
    where {{ column_name }} is not null
),

parent as (
    select {{ field }} as to_field
    from {{ to }}
)

select from_field
from child
left join parent
    on child.from_field = parent.to_field
where parent.to_field is null
    {%- else %}
with child as (
    select distinct {{ column_name }} as from_field
    from {{ model }}
    where {{ column_name }} is not null
)

select from_field
from child
where {{ evident.no_row_matches(to, field, 'child.from_field') }}
    {%- endif %}
{%- endmacro %}
