"""transfer_bo strategy (being written)."""
