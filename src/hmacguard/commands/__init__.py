"""The commands: run a detector, apply the baseline and the threshold, compute the exit status.

One function per command of the ``hmacguard`` program, each returning an :class:`Outcome` (the result
to render and the exit status) or doing its one job; the CLI (:mod:`hmacguard.cli`) only parses
arguments, calls one of these and hands the result to :mod:`hmacguard.report`. Baseline, threshold and
exit status are computed in :mod:`hmacguard.commands.outcome`, once for every command.
"""

from __future__ import annotations
