"""random_search strategy (being written)."""
