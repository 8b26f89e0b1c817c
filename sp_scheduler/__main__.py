"""`python -m sp_scheduler` is the `sp-scheduler` command."""

from sp_scheduler.cli import main

main()
