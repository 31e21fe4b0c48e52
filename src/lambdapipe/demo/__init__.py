"""The first thing a user runs: the whole real-time pipeline on one machine, watched live."""
