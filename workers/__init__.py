"""Job code shipped with sp-scheduler, one package per extension (core, web)."""
