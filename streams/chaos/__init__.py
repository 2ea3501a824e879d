"""Fault injection with figures (``demandcast chaos``): a stack of its own, a slice of the
real log through real worker processes, a fault, and the consistency check afterwards.

:mod:`~streams.chaos.stack` owns the chaos stack and the faults done to its services,
:mod:`~streams.chaos.workload` what is produced (the slice, paced; malformed messages),
:mod:`~streams.chaos.observe` what is measured (progress, lag, topics read back, coverage of
windows by forecasts), :mod:`~streams.chaos.scenarios` the scenarios and
:mod:`~streams.chaos.runner` running them into one report.
"""
