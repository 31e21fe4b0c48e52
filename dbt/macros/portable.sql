{#- What DuckDB and Snowflake spell differently; models call these, never the dialects. -#}

{#- milliseconds since the epoch of a timestamp (UTC, no zone) -#}
{% macro epoch_ms(ts) -%}
    {{ return(adapter.dispatch('epoch_ms', 'lambdapipe')(ts)) }}
{%- endmacro %}
{% macro default__epoch_ms(ts) -%}
    cast(extract(epoch from {{ ts }}) * 1000 as bigint)
{%- endmacro %}
{% macro duckdb__epoch_ms(ts) -%}
    epoch_ms({{ ts }})
{%- endmacro %}
{% macro snowflake__epoch_ms(ts) -%}
    date_part(epoch_millisecond, {{ ts }})
{%- endmacro %}

{#- the value of `value` on the row with the smallest `order_by` in the group -#}
{% macro first_by(value, order_by) -%}
    {{ return(adapter.dispatch('first_by', 'lambdapipe')(value, order_by)) }}
{%- endmacro %}
{% macro default__first_by(value, order_by) -%}
    min_by({{ value }}, {{ order_by }})
{%- endmacro %}
{% macro duckdb__first_by(value, order_by) -%}
    arg_min({{ value }}, {{ order_by }})
{%- endmacro %}

{#- the value of `value` on the row with the largest `order_by` in the group -#}
{% macro last_by(value, order_by) -%}
    {{ return(adapter.dispatch('last_by', 'lambdapipe')(value, order_by)) }}
{%- endmacro %}
{% macro default__last_by(value, order_by) -%}
    max_by({{ value }}, {{ order_by }})
{%- endmacro %}
{% macro duckdb__last_by(value, order_by) -%}
    arg_max({{ value }}, {{ order_by }})
{%- endmacro %}

{#- a timestamp literal -#}
{% macro timestamp_literal(text) -%}
    {{ return(adapter.dispatch('timestamp_literal', 'lambdapipe')(text)) }}
{%- endmacro %}
{% macro default__timestamp_literal(text) -%}
    cast('{{ text }}' as timestamp)
{%- endmacro %}
{% macro snowflake__timestamp_literal(text) -%}
    cast('{{ text }}' as timestamp_ntz)
{%- endmacro %}
