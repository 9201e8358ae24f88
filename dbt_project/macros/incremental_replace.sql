{#-
  A custom incremental strategy, `replace_where` (dbt calls get_incremental_replace_where_sql): delete every
  existing row that one of the new rows replaces, then insert the new rows. The model says which existing rows
  a new row replaces with the config `replaces`: a condition over `existing` (a row of the model as it is) and
  `replacement` (a row the model's SQL returned), e.g.

      replaces="existing.user_id = replacement.user_id
                and existing.session_start between replacement.session_start and replacement.session_end"

  dbt's delete+insert can only delete rows whose unique_key equals a new row's; this also removes rows whose
  key is gone from the new rows (a session merged into an earlier one), without widening the key to a whole
  user. The delete is a join (`using`), so on Postgres an index on the existing table's join columns makes it a
  lookup per new row. Both statements run in the model's transaction.
-#}
{% macro get_incremental_replace_where_sql(arg_dict) -%}
    {%- set replaces = config.get('replaces') -%}
    {%- if not replaces -%}
        {{ exceptions.raise_compiler_error(
            "incremental_strategy 'replace_where' needs the config `replaces`: a condition over `existing` and `replacement`") }}
    {%- endif -%}
    {%- set target = arg_dict['target_relation'] -%}
    {%- set source = arg_dict['temp_relation'] -%}
    {%- set columns = get_quoted_csv(arg_dict['dest_columns'] | map(attribute='name')) -%}

    delete from {{ target }} as existing
    using {{ source }} as replacement
    where {{ replaces }};

    insert into {{ target }} ({{ columns }})
    select {{ columns }}
    from {{ source }}
{%- endmacro %}
