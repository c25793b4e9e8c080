"""Reporting: run summaries, plots and the bench statistics, all read from ledgers."""
