{#-
  The one definition of the money numbers (docs/data-model.md, "Business numbers").
  Each takes a transaction's total_amount and status; every model uses these, under these names.
-#}

{#- gross bookings: every booked line, any status -#}
{% macro gross_bookings(amount) -%}
    cast(coalesce(sum({{ amount }}), 0) as {{ money_type() }})
{%- endmacro %}

{#- revenue: completed lines only, so net of refunds (a refunded line is not completed) -#}
{% macro revenue(amount, status) -%}
    cast(coalesce(sum(case when {{ status }} = 'completed' then {{ amount }} end), 0) as {{ money_type() }})
{%- endmacro %}

{#- refunds: lines refunded (not in revenue) -#}
{% macro refunds(amount, status) -%}
    cast(coalesce(sum(case when {{ status }} = 'refunded' then {{ amount }} end), 0) as {{ money_type() }})
{%- endmacro %}

{#- a ratio that is null, not an error, when there is nothing to divide by -#}
{% macro ratio(numerator, denominator) -%}
    cast({{ numerator }} as double) / nullif(cast({{ denominator }} as double), 0)
{%- endmacro %}

{#- sums of money: exact decimals, wide enough for any history -#}
{% macro money_type() -%}
    decimal(18, 2)
{%- endmacro %}
