"""``--require-validated``: install only versions a trusted key saw pass validation."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import MarketError
from .statement import StatementError, Validated, read_statement

if TYPE_CHECKING:
    from pytest_cleanroom.attest.keys import VerifyingKey

    from ..config import MarketConfig
    from ..index import PackVersion


class UnvalidatedError(MarketError):
    """A version without a passing validation statement, for its archive, by a trusted key."""


def load_trusted_keys(config: MarketConfig) -> list[VerifyingKey]:
    """The public keys ``trusted_keys`` lists; a missing or bad file is a clear error."""
    from pytest_cleanroom.attest.keys import KeyFileError, VerifyingKey

    keys = []
    for path in config.trusted_keys:
        try:
            keys.append(VerifyingKey.load(path))
        except KeyFileError as exc:
            raise UnvalidatedError(f"[market] trusted_keys: {exc}") from None
    return keys


def require_validated(versions: Iterable[PackVersion], keys: Sequence[VerifyingKey]) -> None:
    """Raise :class:`UnvalidatedError` listing every version that is not validated for exactly
    its archive digest by one of ``keys``."""
    if not keys:
        raise UnvalidatedError(
            "validated gpacks are required, but no key is trusted: list the public keys of who"
            ' validates in ggen.toml, [market] trusted_keys = ["keys/team.pub"]'
        )
    problems = [p for p in (_problem(v, keys) for v in versions) if p]
    if problems:
        raise UnvalidatedError(
            "refused (validated gpacks are required; nothing was installed):\n  "
            + "\n  ".join(problems)
        )


def _problem(version: PackVersion, keys: Sequence[VerifyingKey]) -> str | None:
    label = f"{version.id}@{version.version}"
    if version.validation is None:
        return f"{label}: no validation statement in the index (see `ggen market publish`)"
    try:
        read_statement(version.validation, pack_id=version.id, version=version.version,
                       sha256=version.sha256, keys=keys)  # fmt: skip
    except StatementError as exc:
        return str(exc)
    return None


def describe(version: PackVersion, keys: Sequence[VerifyingKey]) -> dict[str, Any]:
    """What ``ggen market info`` says about a version's validation."""
    if version.validation is None:
        return {"validated": False, "reason": "no validation statement"}
    try:
        found: Validated = read_statement(
            version.validation, pack_id=version.id, version=version.version,
            sha256=version.sha256, keys=keys,
        )  # fmt: skip
    except StatementError as exc:
        return {"validated": False, "reason": str(exc)}
    return {"validated": True, **found.to_json()}
