"""Audit rules and front end for javascript (one rule per module)."""
