"""zero_shot strategy (being written)."""
