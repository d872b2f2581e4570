"""A strict ``multipart/form-data`` reader for the publish endpoint (a whole, bounded body)."""

from __future__ import annotations

from dataclasses import dataclass
from email.message import Message

from .protocol import IntakeError

MAX_PARTS = 8


@dataclass(frozen=True)
class Part:
    """One part of the form: its field name, its file name (if any) and its bytes."""

    name: str
    filename: str | None
    data: bytes


def boundary_of(content_type: str) -> bytes:
    """The boundary of a ``multipart/form-data`` content type, or a 400 saying what is wrong."""
    message = Message()
    message["Content-Type"] = content_type
    boundary = message.get_param("boundary")
    if message.get_content_type() != "multipart/form-data" or not isinstance(boundary, str):
        raise IntakeError(400, "the body must be multipart/form-data with a boundary")
    if not 0 < len(boundary) <= 70:
        raise IntakeError(400, "the multipart boundary must have 1 to 70 characters")
    return boundary.encode("ascii", "replace")


def parse_form(body: bytes, boundary: bytes) -> dict[str, Part]:
    """The parts of ``body`` by field name; a malformed body or a repeated field is a 400."""
    delimiter = b"--" + boundary
    if not body.startswith(delimiter + b"\r\n"):
        raise IntakeError(400, "the multipart body does not start with its boundary")
    end = body.rfind(b"\r\n" + delimiter + b"--")
    if end < 0 or body[end + len(delimiter) + 4 :].strip(b"\r\n") != b"":
        raise IntakeError(400, "the multipart body is not closed by its final boundary")
    chunks = body[len(delimiter) + 2 : end].split(b"\r\n" + delimiter + b"\r\n")
    if len(chunks) > MAX_PARTS:
        raise IntakeError(400, f"the form has more than {MAX_PARTS} parts")
    parts: dict[str, Part] = {}
    for chunk in chunks:
        part = _part(chunk)
        if part.name in parts:
            raise IntakeError(400, f"the form field {part.name!r} is given twice")
        parts[part.name] = part
    return parts


def _part(chunk: bytes) -> Part:
    head, sep, data = chunk.partition(b"\r\n\r\n")
    if not sep:
        raise IntakeError(400, "a multipart part has no blank line after its headers")
    message = Message()
    for line in head.decode("latin-1").split("\r\n"):
        key, colon, value = line.partition(":")
        if not colon:
            raise IntakeError(400, f"a multipart part has a malformed header line {line[:60]!r}")
        message[key.strip()] = value.strip()
    if message.get_content_disposition() != "form-data":
        raise IntakeError(400, "a multipart part is not Content-Disposition: form-data")
    name = message.get_param("name", header="content-disposition")
    if not isinstance(name, str) or not name:
        raise IntakeError(400, "a multipart part has no field name")
    filename = message.get_param("filename", header="content-disposition")
    return Part(name, filename if isinstance(filename, str) else None, data)
