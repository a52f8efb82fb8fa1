"""ner families (being written)."""
