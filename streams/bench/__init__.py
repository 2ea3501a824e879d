"""The benchmarks: `demandcast bench ingest` (the stream worker's throughput) and
`demandcast bench latency` (windows through the live path, end to end)."""
