"""The warehouse: RAW tables loaded by the batch job, STAGING and MARTS built by dbt.

`base.Warehouse` is the interface (a DuckDB file locally, Snowflake on a cluster, chosen by
`lambdapipe.resources`); `raw` is the RAW contract; `transform` runs the dbt project in `dbt/`.
"""
