"""Reconciliation: speed vs batch vs the generator's truth for one day, every difference
attributed to a cause the data shows (docs/reconcile.md). Pure comparison in `compare`, the
layers read in `layers`, outputs in `outputs`, the command in `cli`."""
