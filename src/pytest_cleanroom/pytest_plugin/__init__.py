"""pytest-facing half of the cleanroom: options, fixtures, markers, reporting."""
