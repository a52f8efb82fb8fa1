"""successive_halving strategy (being written)."""
