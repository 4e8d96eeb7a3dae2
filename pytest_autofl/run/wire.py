"""What a client's FLARE process and its trainer process send each other: a message is a tree of dicts, lists,
strings, numbers and arrays, framed by its length, and nothing else: numpy's ``.npz`` without pickles (the
arrays) and JSON (the tree). The trainer runs candidate code, so what it sends is decoded without executing
anything of it. Stdlib and numpy only.
"""

from __future__ import annotations

import io
import json
import socket
import struct
import zipfile
from typing import Any

import numpy as np

_LENGTH = struct.Struct("!Q")
_TREE = "__tree__"
MAX_BYTES = 1 << 31  # a frame's cap: far above any model the contracts allow, below a memory blow-up


class WireError(ValueError):
    """A message that is not one: an unknown type, a malformed or truncated frame."""


def encode(message: Any) -> bytes:
    arrays: dict[str, np.ndarray] = {}

    def tree(value: Any) -> Any:
        if isinstance(value, dict):
            return {"d": {str(k): tree(v) for k, v in value.items()}}
        if isinstance(value, (list, tuple)):
            return {"l": [tree(v) for v in value]}
        if value is None or isinstance(value, (bool, int, float, str)):
            return {"v": value}
        if isinstance(value, np.generic):
            return {"v": value.item()}
        if hasattr(value, "detach") and hasattr(value, "numpy"):  # a torch tensor
            value = value.detach().cpu().numpy()
        if isinstance(value, np.ndarray) and value.dtype != object:
            key = f"a{len(arrays)}"
            arrays[key] = value
            return {"a": key}
        raise WireError(
            f"cannot send a {type(value).__name__}: only dicts, lists, numbers, strings and arrays"
        )

    top = tree(message)
    buffer = io.BytesIO()
    arrays[_TREE] = np.frombuffer(json.dumps(top).encode(), dtype=np.uint8)
    np.savez(buffer, **arrays)  # type: ignore[arg-type]
    return buffer.getvalue()


def decode(data: bytes) -> Any:
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        top = json.loads(arrays.pop(_TREE).tobytes().decode())
    except (OSError, EOFError, ValueError, KeyError, UnicodeDecodeError, zipfile.BadZipFile) as exc:
        raise WireError(f"not a message: {exc}") from None

    def value(node: Any) -> Any:
        if not isinstance(node, dict) or len(node) != 1:
            raise WireError("not a message: a malformed tree")
        ((kind, inner),) = node.items()
        if kind == "d" and isinstance(inner, dict):
            return {k: value(v) for k, v in inner.items()}
        if kind == "l" and isinstance(inner, list):
            return [value(v) for v in inner]
        if kind == "a" and inner in arrays:
            return arrays[inner]
        if kind == "v":
            return inner
        raise WireError("not a message: a malformed tree")

    return value(top)


def send(conn: socket.socket, message: Any) -> None:
    data = encode(message)
    conn.sendall(_LENGTH.pack(len(data)) + data)


def receive(conn: socket.socket) -> Any:
    """The next message, or None when the other end closed the connection between messages."""
    head = _read(conn, _LENGTH.size, eof_ok=True)
    if head is None:
        return None
    (size,) = _LENGTH.unpack(head)
    if size > MAX_BYTES:
        raise WireError(f"a message of {size} bytes (cap {MAX_BYTES})")
    return decode(_read(conn, size, eof_ok=False) or b"")


def _read(conn: socket.socket, size: int, eof_ok: bool) -> bytes | None:
    chunks, left = [], size
    while left:
        chunk = conn.recv(min(left, 1 << 20))
        if not chunk:
            if eof_ok and left == size:
                return None
            raise WireError(f"the connection closed inside a message ({size - left} of {size} bytes)")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)
