"""Execution backends: ``local`` (bubblewrap, else unshare), ``docker``; ``auto`` picks."""
