"""Signed attestations of what a test ran: in-toto Statements in DSSE envelopes, ed25519 keys.

``--cleanroom-attest=DIR`` writes them (see :mod:`.plugin`); ``ggen attest verify DIR`` (or
``python -m pytest_cleanroom.attest verify DIR``) checks them. The library is importable without
pytest: :func:`~.verify.verify`, :class:`~.keys.SigningKey`, :class:`~.attester.Attester`.
"""
