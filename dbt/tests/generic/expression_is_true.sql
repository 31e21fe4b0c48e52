{#- Every row satisfies `expression` (a business rule written in SQL); failing rows are returned. -#}
{% test expression_is_true(model, expression) %}
select * from {{ model }}
where not coalesce(({{ expression }}), false)
{% endtest %}
