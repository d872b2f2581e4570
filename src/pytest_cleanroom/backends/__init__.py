"""Execution backends: ``local`` (bubblewrap, falling back to unshare), ``docker``; ``auto`` picks."""
