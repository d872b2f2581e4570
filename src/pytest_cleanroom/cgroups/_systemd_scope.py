"""Ask the user's systemd for a scope with ``Delegate=yes`` holding this process, over D-Bus.

One method call, ``org.freedesktop.systemd1.Manager.StartTransientUnit``, written in the D-Bus
wire format (little-endian, SASL ``EXTERNAL``): to the session bus where there is one, else
straight to the manager's private socket (``$XDG_RUNTIME_DIR/systemd/private``, present whenever
a user manager runs, with or without dbus-user-session). No D-Bus library is needed.
"""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Callable

_METHOD_CALL, _METHOD_RETURN, _ERROR = 1, 2, 3
_PATH, _INTERFACE, _MEMBER, _ERROR_NAME, _REPLY_SERIAL, _DESTINATION, _SIGNATURE = (
    1, 2, 3, 4, 5, 6, 8
)  # fmt: skip


class DBusError(Exception):
    """The call could not be made or systemd refused it (the message says which)."""


class _Writer:
    def __init__(self) -> None:
        self.buf = bytearray()

    def align(self, n: int) -> None:
        self.buf += b"\0" * (-len(self.buf) % n)

    def byte(self, value: int) -> None:
        self.buf.append(value)

    def u32(self, value: int) -> None:
        self.align(4)
        self.buf += struct.pack("<I", value)

    def string(self, value: str) -> None:
        data = value.encode()
        self.u32(len(data))
        self.buf += data + b"\0"

    def signature(self, value: str) -> None:
        self.byte(len(value))
        self.buf += value.encode() + b"\0"

    def array(self, element_alignment: int, write_elements: Callable[[], None]) -> None:
        self.u32(0)
        at = len(self.buf)
        self.align(element_alignment)
        start = len(self.buf)
        write_elements()
        struct.pack_into("<I", self.buf, at - 4, len(self.buf) - start)


def _message(serial: int, fields: list[tuple[int, str, str]], signature: str, body: bytes) -> bytes:
    head = _Writer()
    head.buf += struct.pack("<cBBBII", b"l", _METHOD_CALL, 0, 1, len(body), serial)
    if signature:
        fields = [*fields, (_SIGNATURE, "g", signature)]

    def write_fields() -> None:
        for code, sig, value in fields:
            head.align(8)
            head.byte(code)
            head.signature(sig)
            if sig == "g":
                head.signature(value)
            else:
                head.string(value)

    head.array(8, write_fields)
    head.align(8)
    return bytes(head.buf) + body


def _start_unit_body(unit: str, pid: int) -> bytes:
    body = _Writer()
    body.string(unit)
    body.string("fail")

    def properties() -> None:
        body.align(8)
        body.string("PIDs")
        body.signature("au")
        body.array(4, lambda: body.u32(pid))
        body.align(8)
        body.string("Delegate")
        body.signature("b")
        body.u32(1)

    body.array(8, properties)
    body.array(8, lambda: None)  # no auxiliary units
    return bytes(body.buf)


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise DBusError("the connection closed before the reply")
        data += chunk
    return data


def _read_message(sock: socket.socket) -> tuple[int, dict[int, object], bytes]:
    """``(message type, header fields, body)`` of the next message."""
    fixed = _recv_exact(sock, 16)
    if fixed[:1] != b"l":
        raise DBusError("a big-endian reply, which this client does not read")
    msg_type = fixed[1]
    body_len, _serial, fields_len = struct.unpack_from("<III", fixed, 4)
    rest = _recv_exact(sock, fields_len + (-(16 + fields_len) % 8) + body_len)
    raw, body = fixed + rest[:fields_len], rest[len(rest) - body_len :]
    fields: dict[int, object] = {}
    at = 16
    while at < 16 + fields_len:
        at += -at % 8
        code, sig_len = raw[at], raw[at + 1]
        sig = raw[at + 2 : at + 2 + sig_len].decode()
        at += 3 + sig_len
        if sig == "g":
            n = raw[at]
            fields[code], at = raw[at + 1 : at + 1 + n].decode(), at + 2 + n
        else:
            at += -at % 4
            (value,) = struct.unpack_from("<I", raw, at)
            at += 4
            if sig in ("s", "o"):
                fields[code], at = raw[at : at + value].decode(), at + value + 1
            else:
                fields[code] = value
    return msg_type, fields, body


def _call(sock: socket.socket, serial: int, fields: list[tuple[int, str, str]], sig: str,
          body: bytes) -> bytes:  # fmt: skip
    sock.sendall(_message(serial, fields, sig, body))
    while True:
        msg_type, got, reply = _read_message(sock)
        if got.get(_REPLY_SERIAL) != serial:
            continue  # a signal (NameAcquired) or another reply
        if msg_type == _ERROR:
            text = ""
            if str(got.get(_SIGNATURE, "")).startswith("s"):
                (n,) = struct.unpack_from("<I", reply, 0)
                text = reply[4 : 4 + n].decode(errors="replace")
            raise DBusError(f"{got.get(_ERROR_NAME)}: {text}")
        return reply


def start_scope(address: str, unit: str, pid: int, timeout: float = 30.0) -> None:
    """Start ``unit`` (a scope with ``Delegate=yes``) holding ``pid`` through the systemd user
    manager at ``address`` (``unix:path=...``); :class:`DBusError` when that fails."""
    if not address.startswith("unix:path="):
        raise DBusError(f"only unix:path= addresses are supported, not {address!r}")
    path = address.removeprefix("unix:path=").split(",")[0]
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(path)
            uid = str(os.geteuid()).encode().hex().encode()
            sock.sendall(b"\0AUTH EXTERNAL " + uid + b"\r\n")
            if not sock.recv(512).startswith(b"OK "):
                raise DBusError(f"{path} refused the EXTERNAL authentication of uid {os.geteuid()}")
            sock.sendall(b"BEGIN\r\n")
            bus = not path.endswith("/systemd/private")  # a bus wants Hello and destinations
            dest = [(_DESTINATION, "s", "org.freedesktop.DBus")] if bus else []
            if bus:
                _call(sock, 1, [(_PATH, "o", "/org/freedesktop/DBus"),
                                (_INTERFACE, "s", "org.freedesktop.DBus"),
                                (_MEMBER, "s", "Hello"), *dest], "", b"")  # fmt: skip
            target = [(_DESTINATION, "s", "org.freedesktop.systemd1")] if bus else []
            _call(sock, 2, [(_PATH, "o", "/org/freedesktop/systemd1"),
                            (_INTERFACE, "s", "org.freedesktop.systemd1.Manager"),
                            (_MEMBER, "s", "StartTransientUnit"), *target],
                  "ssa(sv)a(sa(sv))", _start_unit_body(unit, pid))  # fmt: skip
        except OSError as exc:
            raise DBusError(f"{path}: {exc}") from exc
