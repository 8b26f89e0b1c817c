"""The two ways a ledger call fails, decided once for every caller.

`LedgerUnavailable`: the connection was lost or could not be had (Postgres restarting, a network
cut, a pool in backoff). Nothing was decided about the data: retry the same work later.
`LedgerRefused`: Postgres answered and refused the data itself (a constraint, a bad value). Retrying
the same item cannot help: skip it, so one bad item never blocks the work behind it.
"""

from __future__ import annotations

from sp_scheduler.errors import DatabaseUnavailable


class LedgerUnavailable(DatabaseUnavailable):
    """The ledger could not be reached; the call may be retried as it was.

    A `DatabaseUnavailable`, so the worker's task retries its message with backoff (worker.py).
    """


class LedgerRefused(Exception):
    """The ledger refused the data of this call; retrying the same call will not help."""


class RunExists(LedgerRefused):
    """A run with this id is in the ledger already (an earlier attempt committed before its reply)."""
