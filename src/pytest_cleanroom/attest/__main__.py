"""``python -m pytest_cleanroom.attest verify DIR``: the same commands as ``ggen attest``."""

from __future__ import annotations

from .cli import attest

if __name__ == "__main__":
    attest(prog_name="python -m pytest_cleanroom.attest")
