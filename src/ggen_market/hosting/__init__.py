"""An HTTP registry teams run themselves: the upload protocol, its client and its server.

:mod:`.protocol` (paths, form fields, statuses), :mod:`.upload` (``ggen market publish --registry
URL``), :mod:`.intake` (what the server checks before a version enters the index),
:mod:`.server` (``ggen market serve``). Importing this package is cheap.
"""
