"""vision families (being written)."""
