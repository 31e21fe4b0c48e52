"""The batch layer: each day recomputed exactly from the lake's raw history (docs/batch.md)."""
