"""The Redis feature store: the key layout, batch planning, the write sinks (Redis, memory)
and the dense read API. See docs/feature-store.md."""
