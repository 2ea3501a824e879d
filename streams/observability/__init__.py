"""Operating the processes: Prometheus metrics, the health endpoints, structured logs.

:mod:`~streams.observability.metrics` defines every metric a process exports, each set on
a registry of its own (no global state); :mod:`~streams.observability.health` serves
``/metrics``, ``/healthz`` and ``/readyz`` on one port; :mod:`~streams.observability.logs`
configures logging (text or JSON, secrets redacted).
"""
