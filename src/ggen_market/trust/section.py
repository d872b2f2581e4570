"""The ``[validation]`` table of gpack.toml: how ``ggen market validate`` checks a gpack.

Built by pydantic only when a manifest has the table (see :class:`ggen_market.manifest.Manifest`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from ..manifest import _Section, check_pattern


class StepTable(_Section):
    """One check run in the cleanroom, in the directory the templates were rendered into."""

    name: str = Field(min_length=1)
    run: str = Field(min_length=1)
    timeout: float | None = Field(None, gt=0)


class ValidationSection(_Section):
    """``[validation]``: sample variables, checks and a policy at least as strict as ``strict``."""

    policy: Literal["strict", "locked"] = "strict"
    vars: dict[str, str] = {}
    files: dict[str, str] = Field({}, description="Files the output holds before rendering.")
    steps: list[StepTable] = []
    timeout: float | None = Field(None, gt=0)

    @field_validator("files")
    @classmethod
    def _files(cls, value: dict[str, str]) -> dict[str, str]:
        for rel in value:
            check_pattern(rel)
        return value
