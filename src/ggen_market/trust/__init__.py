"""Trusting gpacks: validation in a cleanroom, signed statements, publishing, required trust.

Importing this package is cheap; the modules load when used: :mod:`.validate`
(``validate_archive``), :mod:`.statement` (``sign_statement``, ``read_statement``),
:mod:`.publish` (``publish_version``), :mod:`.require` (``require_validated``, ``describe``),
:mod:`.section` (the ``[validation]`` table of gpack.toml), :mod:`.commands` (the click commands).
"""
