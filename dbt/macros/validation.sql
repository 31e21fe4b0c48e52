{#-
  rules: a list of [rule name, SQL condition that is true when the rule is broken].
  Gives the broken rules' names joined by ';' (in the order given), or null when none is.
-#}
{% macro validation_errors(rules) -%}
    nullif(rtrim(
        {%- for name, broken in rules %}
        case when coalesce({{ broken }}, false) then '{{ name }};' else '' end
        {%- if not loop.last %} ||{% endif %}
        {%- endfor %},
        ';'), '')
{%- endmacro %}
