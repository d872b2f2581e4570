"""sha256 hash objects for small data without loading OpenSSL, and OpenSSL's for large data.

:mod:`hashlib` loads OpenSSL's library when it is imported (milliseconds the cache-hit fast path
cannot afford); the interpreter's own sha256 module loads in a fraction of that and gives the same
digests, about five times slower per byte. :func:`sha256` is the interpreter's; :func:`for_size`
gives OpenSSL's from :data:`LARGE` bytes on, where its speed repays its loading. Where the
interpreter has no sha256 module of its own, both are :mod:`hashlib`'s.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing itself is not imported: the cache-hit fast path loads this module
if TYPE_CHECKING:
    from hashlib import _Hash

try:
    from _sha2 import sha256 as _sha256  # type: ignore[import-not-found]  # Python 3.12+
except ImportError:
    try:
        from _sha256 import sha256 as _sha256  # type: ignore[import-not-found]  # Python 3.11
    except ImportError:
        from hashlib import sha256 as _sha256


#: From this size on (bytes) data is hashed through OpenSSL.
LARGE = 1024 * 1024


def sha256(data: bytes = b"") -> _Hash:
    """A new sha256 hash object (the interpreter's), fed ``data``."""
    return _sha256(data)  # type: ignore[no-any-return]


def for_size(size: int) -> _Hash:
    """A new sha256 hash object for ``size`` bytes: OpenSSL's from :data:`LARGE` on."""
    if size < LARGE:
        return sha256()
    import hashlib

    return hashlib.sha256()
