"""Ingest: the Faust app of the stream worker, its stream processor (decode, dead letters,
exactly-once store writes, windows.closed), partition batching inside Faust and the fast
decoder of orders and clicks."""
