"""Artifact signatures as turbo makes them: the ``x-artifact-tag`` header.

The tag is HMAC-SHA256, keyed with the team's shared secret, over the artifact's key, then the
team id (``TURBO_TEAMID``; empty when only a slug is configured), then the artifact's bytes, in
standard base64. A server stores the tag beside the artifact and hands it back; only holders of
the key can make a tag that verifies, so a server (or anyone who can write to its storage)
cannot forge or alter an artifact unnoticed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac


def _mac(key: bytes, artifact_key: str, team_id: str, body: bytes) -> bytes:
    message = artifact_key.encode() + team_id.encode() + body
    return hmac.new(key, message, hashlib.sha256).digest()


def make_tag(key: bytes, artifact_key: str, team_id: str, body: bytes) -> str:
    """The ``x-artifact-tag`` for ``body`` stored under ``artifact_key`` for ``team_id``."""
    return base64.b64encode(_mac(key, artifact_key, team_id, body)).decode()


def tag_matches(key: bytes, artifact_key: str, team_id: str, body: bytes, tag: str) -> bool:
    """Whether ``tag`` is the one ``key`` makes for this artifact (constant-time comparison;
    padding optional, as older turbo versions wrote none)."""
    text = tag.strip().rstrip("=")
    try:
        given = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        return False
    return hmac.compare_digest(given, _mac(key, artifact_key, team_id, body))
