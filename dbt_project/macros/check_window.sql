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
    {{ column }} > {{ env_var('EVIDENT_CHECK_SINCE_LAND_SEQ', '0') | int }}
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
