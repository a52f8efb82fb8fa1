"""tpe strategy (being written)."""
