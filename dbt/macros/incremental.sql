{#-
  Incremental models rebuild whole days (delete+insert on the day column), and the days to
  rebuild are those whose inputs were loaded after what this model last saw. Every incremental
  model keeps `loaded_through`, the newest load time of the inputs behind a row. A RAW day is
  always replaced whole (Warehouse.load_raw), so a re-run or a late arrival for day D gives all
  of D's rows a new loaded_at and D is rebuilt whole: never half, never twice.

  inputs: a list of [relation, day column, load-time column].
-#}
{% macro days_to_rebuild(inputs) -%}
    {%- for relation, day_column, time_column in inputs %}
    select {{ day_column }} as rebuilt_day from {{ relation }}
    where {{ time_column }} > (
        select coalesce(max(loaded_through), {{ timestamp_literal('1900-01-01 00:00:00') }})
        from {{ this }}
    )
    {%- if not loop.last %}
    union
    {%- endif %}
    {%- endfor %}
{%- endmacro %}
