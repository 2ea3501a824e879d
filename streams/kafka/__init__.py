"""Kafka clients: the one producer wrapper, consumer helpers, topic administration and `tail`."""
