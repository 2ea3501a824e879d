"""Restock and pricing alerts: the pure rules, the alert memory kept in Redis and its codec,
and their evaluation for a batch of forecasts."""
