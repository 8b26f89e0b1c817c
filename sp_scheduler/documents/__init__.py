"""The JSON documents the CLI's `--json` prints and the HTTP API serves, each built in one place.

Each module builds its documents from the catalogue and the ledger (and, for the status, Redis), so
`sp-scheduler jobs show NAME --json` and `GET /api/v1/jobs/NAME` cannot drift apart. The modules are
imported one by one (this package re-exports nothing): `jobs` loads no database driver, so
`jobs list` keeps working offline.
"""
