"""Audit rules and front end for config (one rule per module)."""
