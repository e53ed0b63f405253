"""Probe families, one module each: ladder, framing variants, limit bisection, retention, burst.

Each family is a function of a :class:`~hmacguard.scan.probes.base.Prober`; it sends through it (so
budgets, judging and liveness are the same everywhere) and returns what it measured.
"""
