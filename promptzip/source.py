"""Reading input in bounded memory.

A document is read as *pieces* of at most `PIECE_BYTES`, each cut after the last newline
inside that window (or, for a window without a newline, after the last blank, or at a UTF-8
character boundary). The same cutting rule serves the reader and the output token counter, so
`promptzip tokens` on an output file agrees with the report.

Non-seekable or non-UTF-8-clean input (stdin, `--errors replace`) is first spooled, decoded,
into an anonymous temporary file, so every later pass can re-read the document by byte offset.
"""

from __future__ import annotations

import io
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from .errors import InputError, UsageError

PIECE_BYTES = 1 << 20
_SNIFF_BYTES = 8192


class PieceSplitter:
    """Cuts a byte stream into pieces; the cut points depend only on the bytes."""

    def __init__(self, size: int = PIECE_BYTES) -> None:
        self.size = size
        self._buf = bytearray()

    def feed(self, data: bytes) -> Iterator[bytes]:
        self._buf += data
        while len(self._buf) >= self.size:
            window = self._buf[: self.size]
            cut = window.rfind(b"\n") + 1
            if cut == 0:
                cut = max(window.rfind(b" "), window.rfind(b"\t")) + 1
            if cut == 0:
                cut = self.size
                while 0 < cut < len(self._buf) and (self._buf[cut] & 0xC0) == 0x80:  # inside a UTF-8 char
                    cut -= 1
                cut = cut or self.size
            piece = bytes(self._buf[:cut])
            del self._buf[:cut]
            yield piece

    def finish(self) -> Iterator[bytes]:
        if self._buf:
            piece = bytes(self._buf)
            self._buf.clear()
            yield piece


def _decode(piece: bytes, offset: int, errors: str, label: str) -> str:
    try:
        return piece.decode("utf-8", errors=errors)
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{label} is not valid UTF-8 (byte {offset + exc.start})",
            "Re-run with --errors replace to substitute U+FFFD for bad bytes.",
        ) from None


def check_not_binary(head: bytes, label: str, errors: str) -> None:
    if errors == "strict" and b"\x00" in head[:_SNIFF_BYTES]:
        raise InputError(
            f"{label} looks binary (it contains NUL bytes)",
            "promptzip compresses text; use --errors replace to process it anyway.",
        )


def _raw_pieces(f: BinaryIO, errors: str, label: str) -> Iterator[tuple[int, bytes]]:
    """(byte offset, bytes) pieces of a binary stream from its current position."""
    splitter = PieceSplitter()
    offset = 0
    first = True
    while True:
        data = f.read(PIECE_BYTES)
        if first:
            check_not_binary(data, label, errors)
            first = False
        if not data:
            break
        for piece in splitter.feed(data):
            yield offset, piece
            offset += len(piece)
    for piece in splitter.finish():
        yield offset, piece


def iter_pieces(f: BinaryIO, errors: str = "strict", label: str = "input") -> Iterator[tuple[int, str]]:
    """(byte offset, text) for each piece of a binary file, from its current position."""
    for offset, piece in _raw_pieces(f, errors, label):
        yield offset, _decode(piece, offset, errors, label)


class RangeReader:
    """Reads byte ranges of a seekable file in increasing order, with one forward buffer."""

    def __init__(self, f: BinaryIO, block: int = PIECE_BYTES) -> None:
        self._f = f
        self._block = block
        self._f.seek(0)
        self._buf = b""
        self._buf_start = 0

    def get(self, start: int, end: int) -> bytes:
        if start < self._buf_start:
            raise ValueError("RangeReader reads forward only")
        buf_end = self._buf_start + len(self._buf)
        if end > buf_end:
            if start >= buf_end:
                self._f.seek(start)
                self._buf = self._f.read(max(end - start, self._block))
            else:
                self._f.seek(buf_end)
                more = self._f.read(max(end - buf_end, self._block))
                self._buf = self._buf[start - self._buf_start :] + more
            self._buf_start = start
        lo = start - self._buf_start
        return self._buf[lo : lo + (end - start)]


class Document:
    """A seekable UTF-8 byte file plus where it came from."""

    def __init__(self, f: BinaryIO, label: str, size: int, errors: str) -> None:
        self.file = f
        self.label = label
        self.size = size
        self.errors = errors

    def read_text(self) -> str:
        """The whole document as text, from its first byte (a spooled stdin file is left at its
        end after spooling)."""
        self.file.seek(0)
        data = self.file.read()
        check_not_binary(data, self.label, self.errors)
        return _decode(data, 0, self.errors, self.label)

    def pieces(self) -> Iterator[tuple[int, str]]:
        self.file.seek(0)
        return iter_pieces(self.file, self.errors, self.label)


def _spool(src: BinaryIO, label: str, errors: str) -> BinaryIO:
    """Copy a stream, decoded (strict or replace) and re-encoded, into a temporary file."""
    tmp = tempfile.TemporaryFile(prefix="promptzip-")
    try:
        for offset, piece in _raw_pieces(src, errors, label):
            tmp.write(_decode(piece, offset, errors, label).encode("utf-8"))
    except BaseException:
        tmp.close()
        raise
    tmp.flush()
    return tmp


@contextmanager
def open_document(path: str | Path | None, errors: str = "strict") -> Iterator[Document]:
    """Open a path, `-`/None for stdin, as a Document. Strict UTF-8 files are used in place."""
    if errors not in ("strict", "replace"):
        raise UsageError(f"--errors must be strict or replace, not {errors!r}")
    if path is None or str(path) == "-":
        if sys.stdin is None:
            raise UsageError("no input: give a PATH or pipe text on stdin")
        stream = getattr(sys.stdin, "buffer", None) or io.BytesIO(sys.stdin.read().encode())
        f = _spool(stream, "stdin", errors)
        try:
            yield Document(f, "stdin", f.tell(), "strict")
        finally:
            f.close()
        return
    p = Path(path)
    if p.is_symlink() and not p.exists():
        raise InputError(f"{p} is a broken symbolic link")
    if p.is_dir():
        raise UsageError(f"{p} is a directory", "Use `promptzip batch DIR -o OUT` for folders.")
    try:
        f = open(p, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        raise InputError(f"{p} does not exist") from None
    except OSError as exc:
        raise InputError(f"cannot read {p}: {exc.strerror}") from None
    try:
        if errors == "replace" or not f.seekable():
            spooled = _spool(f, str(p), errors)
            f.close()
            f = spooled
            size = f.tell()
        else:
            size = os.fstat(f.fileno()).st_size
        yield Document(f, str(p), size, "strict")
    finally:
        f.close()


def document_from_bytes(data: bytes, label: str = "text") -> Document:
    return Document(io.BytesIO(data), label, len(data), "strict")
