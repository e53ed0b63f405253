"""Audit rules and front end for python (one rule per module)."""
