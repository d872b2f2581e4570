"""ggen_lifecycle."""
