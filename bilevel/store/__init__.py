"""What a run directory holds: the ledger, results.tsv and the lock on the directory."""
