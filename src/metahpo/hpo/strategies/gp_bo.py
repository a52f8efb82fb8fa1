"""gp_bo strategy (being written)."""
