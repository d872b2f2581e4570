"""pytest-facing half of the cleanroom: options, fixtures, markers, reporting.

Sub-plugins (services, scenario, attest) read the run's settings with :func:`get_settings`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_getattr
from .settings import CleanroomSettings, get_settings

__all__ = [
    "BackendStatus",
    "CleanroomPolicyWarning",
    "CleanroomSettings",
    "CommandRecord",
    "FloorError",
    "PytestCleanroom",
    "backend_status",
    "get_settings",
]

_LAZY = {
    "BackendStatus": "probe",
    "backend_status": "probe",
    "CleanroomPolicyWarning": "floor",
    "CommandRecord": "records",
    "FloorError": "floor",
    "PytestCleanroom": "sandbox",
}

if TYPE_CHECKING:
    from .floor import CleanroomPolicyWarning, FloorError
    from .probe import BackendStatus, backend_status
    from .records import CommandRecord
    from .sandbox import PytestCleanroom


__getattr__ = lazy_getattr(__name__, _LAZY)
