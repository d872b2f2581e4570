"""The shipped checks; run them with ``pytest --pyargs pytest_cleanroom.testing.conformance``."""
