"""ggen_market."""
