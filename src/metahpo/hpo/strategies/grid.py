"""grid strategy (being written)."""
