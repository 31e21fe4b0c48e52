{#- Every row passes the business rules its model checks (`validation_errors` is null). -#}
{% test no_validation_errors(model, column_name) %}
select * from {{ model }}
where {{ column_name }} is not null
{% endtest %}
