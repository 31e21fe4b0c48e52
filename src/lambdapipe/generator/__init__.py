"""The event generator: a seeded model of shop traffic with ground truth and fault injection."""
