"""The lake: immutable raw history in Iceberg tables, archived exactly once from Kafka."""
