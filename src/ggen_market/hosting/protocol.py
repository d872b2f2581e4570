"""The registry upload protocol (version 1), shared by the client and the server.

Reading is what every HTTP registry serves: ``GET index.json`` and ``GET archives/<file>``.
Writing is two endpoints under ``api/v1/``, both behind ``Authorization: Bearer <token>``:

* ``GET api/v1/registry``: what the registry accepts (protocol, size cap, trusted key ids);
* ``POST api/v1/publish``: ``multipart/form-data`` with the fields :data:`FIELDS` and the file
  part ``archive`` named ``<id>-<version>.tar.gz``; answered with a JSON object
  (``ok``, ``error`` or ``id``/``version``/``sha256``/``archive``/``keyid``/``already_published``).
"""

from __future__ import annotations

from ..errors import MarketError

PROTOCOL = 1
INFO_PATH = "api/v1/registry"
PUBLISH_PATH = "api/v1/publish"
#: The form fields of a publish request besides the ``archive`` file part.
FIELDS = ("id", "version", "sha256", "statement")
ARCHIVE_FIELD = "archive"
#: The default cap of one publish request's body (``ggen market serve --max-upload-bytes``).
MAX_UPLOAD_BYTES = 64 * 1024 * 1024
#: The environment variable holding the token, for ``publish`` and ``serve`` alike.
TOKEN_ENV = "GGEN_REGISTRY_TOKEN"


class UploadError(MarketError):
    """A publish to an HTTP registry that did not happen; the registry is unchanged."""


class IntakeError(MarketError):
    """An upload the server refuses: ``status`` is the HTTP status it answers with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
