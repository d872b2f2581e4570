"""Execution backends: ``local`` (bubblewrap, else util-linux unshare), ``docker``; ``auto`` picks.

:func:`get_backend` resolves a name (or takes an instance) to a ready
:class:`~.base.Backend`; given a policy it also checks that the backend can honour it, raising
:class:`~pytest_cleanroom.errors.BackendUnavailableError` with what to install otherwise.
Backends are found through the entry-point group ``pytest_cleanroom.backends`` (see
:mod:`.registry`).
"""

from __future__ import annotations

import threading
import weakref
from typing import TYPE_CHECKING

from ..errors import BackendUnavailableError, TreeLimitsError
from . import registry

if TYPE_CHECKING:
    from ..policy import Policy
    from .base import Backend

ALIASES = registry.ALIASES


def backend_names() -> tuple[str, ...]:
    """Every name ``get_backend`` accepts: ``auto``, ``local``, then each registered backend."""
    return registry.names()


def _instantiate(name: str) -> Backend:
    return registry.load(name)()


def get_backend(
    name: str | Backend, policy: Policy | None = None, *, per_process_limits: bool = False
) -> Backend:
    """The backend called ``name`` (``auto``, ``local``, or a registered one), or ``name``
    itself when it is a :class:`~.base.Backend` instance.

    With ``policy``, the backend is checked against it: for ``auto``/``local`` the first
    candidate that can honour it is returned; if none can, the error lists why each could not.
    ``per_process_limits`` accepts a candidate that can hold the whole-tree limits per process
    only (see :func:`fit_policy`).
    """
    return select_backend(name, policy, per_process_limits=per_process_limits)[0]


def fit_policy(backend: Backend, policy: Policy, *, per_process_limits: bool) -> Policy:
    """``policy`` if ``backend`` can honour it; with ``per_process_limits``, where it can hold the
    whole-tree limits per process only, the policy it can honour, named and digested as such
    (``standard+per_process_limits``). Raises :class:`BackendUnavailableError` otherwise.

    A :attr:`~.base.Backend.reusable` backend (one instance serving a whole run, whose checks
    probe what the host can do once) is checked once per policy: each later cleanroom under it
    only has it :meth:`~.base.Backend.prepare_ahead`, as its check would."""
    fitted = _fitted.get(backend) if backend.reusable else None
    known = fitted.get((policy, per_process_limits)) if fitted is not None else None
    if known is not None:
        backend.prepare_ahead()
        return known
    try:
        backend.check(policy)
        result = policy
    except TreeLimitsError:
        if not per_process_limits:
            raise
        result = policy.replace(per_process_limits=True)
        backend.check(result)
    if backend.reusable:
        with _fitted_lock:
            _fitted.setdefault(backend, {})[(policy, per_process_limits)] = result
    return result


#: ``{reusable backend: {(policy, per_process_limits): the policy it honours}}``.
_fitted: weakref.WeakKeyDictionary[Backend, dict[tuple[Policy, bool], Policy]] = (
    weakref.WeakKeyDictionary()
)
_fitted_lock = threading.Lock()


def select_backend(
    name: str | Backend, policy: Policy | None = None, *, per_process_limits: bool = False
) -> tuple[Backend, list[str]]:
    """:func:`get_backend`, and why each candidate of ``auto``/``local`` before the chosen one
    could not be used (what the report header says)."""
    from .base import Backend

    if isinstance(name, Backend) or name not in ALIASES:
        backend = name if isinstance(name, Backend) else _instantiate(name)
        if policy is not None:
            fit_policy(backend, policy, per_process_limits=per_process_limits)
        return backend, []
    from ..policy import Policy

    wanted = policy if policy is not None else Policy.level("standard")
    reasons: list[str] = []
    for candidate in ALIASES[name]:
        try:
            backend = _instantiate(candidate)
            fit_policy(backend, wanted, per_process_limits=per_process_limits)
        except BackendUnavailableError as exc:
            reasons.append(f"{candidate}: {exc}")
            continue
        except Exception as exc:  # a broken check must not hide the candidates after it
            reasons.append(f"{candidate}: its check failed: {type(exc).__name__}: {exc}")
            continue
        return backend, reasons
    raise BackendUnavailableError(
        f"no cleanroom backend for {name!r} can honour policy {wanted.name!r} here:\n  "
        + "\n  ".join(reasons)
    )


def available_backends(policy: Policy | None = None) -> list[str]:
    """Names of the concrete backends that can honour ``policy`` (default ``standard``) here."""
    return [name for name, problem in backend_problems(policy).items() if problem is None]


def backend_problems(policy: Policy | None = None) -> dict[str, str | None]:
    """``{concrete backend: None if usable here, else why not}``, checked against ``policy``."""
    return {name: backend_problem(name, policy) for name in registry.registered()}


def backend_problem(name: str, policy: Policy | None = None) -> str | None:
    """``None`` if backend ``name`` can honour ``policy`` (default ``standard``) here, else why
    not."""
    from ..policy import Policy

    try:
        _instantiate(name).check(policy if policy is not None else Policy.level("standard"))
    except BackendUnavailableError as exc:
        return str(exc)
    except Exception as exc:
        return f"its check failed: {type(exc).__name__}: {exc}"
    return None
