{#- Business rule 1 (docs/data-model.md): total = unit price * quantity - discount + tax, exactly. -#}
{% test total_adds_up(model, column_name) %}
select * from {{ model }}
where {{ column_name }} <> unit_price * quantity - discount_amount + tax_amount
   or unit_price <= 0 or discount_amount < 0 or tax_amount < 0
{% endtest %}
