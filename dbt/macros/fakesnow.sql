{#-
  dbt-snowflake's temporary table (what unit tests and incremental runs build), as it is, except
  against a local fakesnow server (account `fakesnow`, the test double of the Snowflake target):
  it cannot create temporary tables the way dbt asks, so there the table is transient.
-#}
{% macro snowflake__create_table_temporary_sql(relation, compiled_code) -%}
{%- set contract_config = config.get('contract') -%}
{%- if contract_config.enforced -%}
    {{- get_assert_columns_equivalent(compiled_code) -}}
    {%- set compiled_code = get_select_subquery(compiled_code) -%}
{%- endif -%}
{%- set sql_header = config.get('sql_header', none) -%}
{{ sql_header if sql_header is not none }}
create or replace {{ 'transient' if target.account == 'fakesnow' else 'temporary' }} table {{ relation }}
    {%- if contract_config.enforced %}
    {{ get_table_columns_and_constraints() }}
    {%- endif %}
as (
    {{ compiled_code }}
    )
{%- endmacro %}
