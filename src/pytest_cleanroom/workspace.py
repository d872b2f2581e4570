"""The test's private working tree: the only writable place a sandboxed command sees."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
from pathlib import Path

from .errors import WorkspaceError
from .host_files import NotRegularFileError, kind, read_regular


class Workspace:
    """A directory with helpers. Paths given to its methods are relative and may not escape it."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def __fspath__(self) -> str:
        return str(self.root)

    def __repr__(self) -> str:
        return f"Workspace({str(self.root)!r})"

    def path(self, relative: str | os.PathLike[str] = ".") -> Path:
        """Absolute path of ``relative``; :class:`WorkspaceError` if it leaves the workspace."""
        candidate = (self.root / relative).resolve()
        if candidate != self.root and self.root not in candidate.parents:
            raise WorkspaceError(f"path {os.fspath(relative)!r} escapes the workspace {self.root}")
        return candidate

    def write(self, relative: str, content: str | bytes, *, mode: int | None = None) -> Path:
        """Write a file (parents created); returns its absolute path."""
        target = self.path(relative)
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content, encoding="utf-8")
        if mode is not None:
            target.chmod(mode)
        return target

    def read(self, relative: str) -> str:
        return self.path(relative).read_text(encoding="utf-8")

    def read_bytes(self, relative: str) -> bytes:
        return self.path(relative).read_bytes()

    def exists(self, relative: str) -> bool:
        return self.path(relative).exists()

    def mkdir(self, relative: str) -> Path:
        target = self.path(relative)
        target.mkdir(parents=True, exist_ok=True)
        return target

    def copy_in(self, source: str | os.PathLike[str], dest: str = ".") -> Path:
        """Copy a file or a whole tree from the host into the workspace at ``dest``."""
        src = Path(source)
        if not src.exists():
            raise WorkspaceError(f"cannot copy {src} into the workspace: it does not exist")
        target = self.path(dest)
        if src.is_dir():
            shutil.copytree(src, target, symlinks=True, dirs_exist_ok=True)
        else:
            if target.is_dir():
                target = target / src.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target)
        return target

    def files(self) -> list[str]:
        """Sorted POSIX paths, relative to the root, of every entry that is not a directory
        (regular files, symlinks, also to directories, and special files such as FIFOs).

        Links are never followed; names that are not UTF-8 come back as :func:`os.fsdecode`
        gives them."""
        found: list[str] = []
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames.sort()
            base = Path(dirpath)
            for name in filenames:
                found.append((base / name).relative_to(self.root).as_posix())
            for name in dirnames:
                if (base / name).is_symlink():
                    found.append((base / name).relative_to(self.root).as_posix())
        return sorted(found)

    def file_digests(self) -> dict[str, str]:
        """``{relative path: sha256 hex}`` of every entry of :meth:`files`: a file's content, a
        symlink's target text, a special file's kind (a FIFO or device is never read)."""
        out: dict[str, str] = {}
        for rel in self.files():
            full = self.root / rel
            info = full.lstat()
            if stat.S_ISLNK(info.st_mode):
                data = b"symlink:" + os.fsencode(os.readlink(full))
            elif stat.S_ISREG(info.st_mode):
                try:
                    data = read_regular(full)
                except NotRegularFileError as exc:  # swapped for something else meanwhile
                    data = f"changed:{exc}".encode(errors="surrogateescape")
            else:
                data = f"{kind(info.st_mode)}:".encode()
            out[rel] = hashlib.sha256(data).hexdigest()
        return out

    def digest(self) -> str:
        """sha256 over sorted paths and contents: equal trees give equal digests (a name is
        hashed as its bytes, ended by a NUL that no name holds)."""
        h = hashlib.sha256()
        for rel, file_digest in self.file_digests().items():
            h.update(os.fsencode(rel) + b"\0" + file_digest.encode() + b"\n")
        return "sha256:" + h.hexdigest()
