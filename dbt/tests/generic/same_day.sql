{#- A row's timestamp falls on its day (a RAW row's batch_day is the UTC day of its time). -#}
{% test same_day(model, column_name, day_column) %}
select * from {{ model }}
where cast({{ column_name }} as date) <> {{ day_column }}
{% endtest %}
