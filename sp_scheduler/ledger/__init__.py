"""The ledger behind one contract: `Ledger`, its two failures, and the retry rules its callers share.

`PostgresLedger` lives in `sp_scheduler.ledger.postgres` (it imports psycopg), `InMemoryLedger` in
`sp_scheduler.ledger.memory`; code that only talks to the contract imports neither.
"""

from sp_scheduler.ledger.contract import Ledger, SlotStatus
from sp_scheduler.ledger.errors import LedgerRefused, LedgerUnavailable, RunExists
from sp_scheduler.ledger.retry import BEAT_RETRY_DELAYS, KEEPER_RETRY_DELAYS, Backoff, retry_once

__all__ = [
    "BEAT_RETRY_DELAYS",
    "KEEPER_RETRY_DELAYS",
    "Backoff",
    "Ledger",
    "LedgerRefused",
    "LedgerUnavailable",
    "RunExists",
    "SlotStatus",
    "retry_once",
]
