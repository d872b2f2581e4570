"""The former name of the public names of :mod:`pytest_cleanroom.containers`, kept working."""

from __future__ import annotations

from .containers import *  # noqa: F403
from .containers import __all__ as __all__
