"""qa families (being written)."""
