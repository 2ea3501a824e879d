"""Forecast serving: the forecast worker, its serving model, its work planning, inputs and
output payloads."""
