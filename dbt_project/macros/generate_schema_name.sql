{#-
  Every node of this project lives in one schema, `analytics` (the audit area), on both targets, whatever the
  target's own schema is: dbt's default would prefix custom schemas with the target schema
  (`analytics_analytics`). A node may still name another schema explicitly with `+schema`.
-#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        analytics
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
