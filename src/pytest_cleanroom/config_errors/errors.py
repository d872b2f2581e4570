"""The toolkit's one error: a configuration file is wrong at a file, line and column."""

from __future__ import annotations

from pathlib import Path


class ConfigFileError(ValueError):
    """A configuration file is malformed; ``str()`` is ``file:line:column: message``.

    ``line`` and ``column`` are 1-based, ``None`` when unknown. Each package turns this into its
    own typed error (keeping ``message`` and the position), so users see one wording.
    """

    def __init__(
        self,
        path: Path | str | None,
        message: str,
        *,
        line: int | None = None,
        column: int | None = None,
        reason: str | None = None,
    ) -> None:
        self.path = Path(path) if path is not None else None
        self.message = message
        #: The problem alone, without the file or a prefix (``message`` may add one).
        self.reason = reason if reason is not None else message
        self.line = line
        self.column = column if line is not None else None
        super().__init__(str(self))

    @property
    def where(self) -> str:
        """``file:line:column`` (as much of it as is known)."""
        where = str(self.path) if self.path is not None else "<text>"
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        return where

    @property
    def at(self) -> str:
        """`` (at line L, column C)`` or ``""``: the position in words, for messages that name
        the file alone."""
        if self.line is None:
            return ""
        column = f", column {self.column}" if self.column is not None else ""
        return f" (at line {self.line}{column})"

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"

    def to_dict(self) -> dict[str, object]:
        """The error as JSON-ready data (``--json`` output)."""
        return {
            "type": type(self).__name__,
            "message": self.message,
            "file": str(self.path) if self.path is not None else None,
            "line": self.line,
            "column": self.column,
        }


class TomlSyntaxError(ConfigFileError):
    """The file is not valid TOML (or not UTF-8, or nested too deeply to parse)."""
