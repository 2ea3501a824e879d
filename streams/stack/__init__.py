"""The embedded development stack (Apache Kafka + Redis as local processes), child processes
and the health check of the configured services."""
