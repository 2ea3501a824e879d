"""History: importers of historical event logs, their replay into Kafka, simulated inventory
for logs without it, and the consistency check of the features against a log."""
