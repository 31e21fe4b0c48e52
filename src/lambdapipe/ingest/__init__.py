"""Ingest: the shop's PostgreSQL dimensions and their change capture into Kafka (Debezium)."""
