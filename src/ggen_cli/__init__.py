"""ggen_cli."""
