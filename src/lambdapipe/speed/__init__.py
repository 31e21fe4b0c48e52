"""The speed layer: Kafka `events` and `transactions` to the serving store's realtime tables.

Pure `DataFrame -> DataFrame` transforms (`records`, `deduplicate`, `dead_letters`, `enrich`,
`sessionize`, `serving_rows`), the edges (`session`, `dimensions`, `sink`, `metrics`) and the
thin job (`job`, `cli`). See docs/speed.md.
"""
