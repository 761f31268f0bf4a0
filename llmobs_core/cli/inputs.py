"""Open the event files named on the command line: plain, gzip or stdin."""

from __future__ import annotations

import contextlib
import gzip
import io
import shutil
import sys
import tempfile
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO

_GZIP_MAGIC = b"\x1f\x8b"
STDIN_NAME = "-"
# Read buffer per input. Reading lines of about 1 kB through the default
# 8 KiB buffer takes about three times as long.
_BUFFER_SIZE = 1 << 20


class InputError(Exception):
    """An input file that cannot be read."""


class Inputs:
    """Event files that can be read more than once, stdin included.

    Standard input is copied to a temporary file on disk, so a second pass
    (the feedback join) reads it again without holding it in memory. Use as a
    context manager, which removes that copy.

    Args:
        paths: File paths, ``-`` for standard input. Files whose content
            starts with the gzip magic bytes are decompressed, whatever their
            name.

    Raises:
        InputError: If a path does not exist or is not a regular file, or
            ``-`` is given twice.
    """

    def __init__(self, paths: Sequence[str]) -> None:
        if list(paths).count(STDIN_NAME) > 1:
            raise InputError("'-' (standard input) can be given only once")
        for path in paths:
            if path != STDIN_NAME:
                _check_file(path)
        self._paths = list(paths)
        self._stdin_copy: IO[bytes] | None = None

    def __enter__(self) -> Inputs:
        if STDIN_NAME in self._paths:
            self._stdin_copy = tempfile.TemporaryFile(
                buffering=_BUFFER_SIZE, prefix="llmobs-stdin-"
            )
            shutil.copyfileobj(sys.stdin.buffer, self._stdin_copy)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._stdin_copy is not None:
            self._stdin_copy.close()

    def sources(self) -> Iterator[tuple[str, Iterator[bytes]]]:
        """Yield ``(name, lines)`` for each input, in order, lines as bytes.

        Raises:
            InputError: If a file cannot be read or decompressed.
        """
        for path in self._paths:
            name = "<stdin>" if path == STDIN_NAME else path
            with self._open(path) as stream:
                yield name, _read_lines(name, stream)

    @contextlib.contextmanager
    def _open(self, path: str) -> Iterator[IO[bytes]]:
        if path == STDIN_NAME:
            assert self._stdin_copy is not None, "use Inputs as a context manager"
            stream = self._stdin_copy
            stream.seek(0)
            yield _decompressed(stream)
            return
        with open(path, "rb", buffering=_BUFFER_SIZE) as stream:
            yield _decompressed(stream)


def _check_file(path: str) -> None:
    file = Path(path)
    if file.is_file():
        return
    if file.is_dir():
        raise InputError(f"input {path!r} is a directory; pass a JSON lines file")
    if file.exists():
        # A pipe such as <(zcat events.gz) cannot be read twice, as the
        # feedback join does.
        raise InputError(
            f"input {path!r} is not a regular file; pass a JSON lines file, "
            "or - to read standard input"
        )
    raise InputError(f"input file {path!r} not found; pass a JSON lines file")


def _decompressed(stream: IO[bytes]) -> IO[bytes]:
    magic = stream.read(len(_GZIP_MAGIC))
    stream.seek(0)
    if magic == _GZIP_MAGIC:
        decompressed = gzip.GzipFile(fileobj=stream, mode="rb")
        return io.BufferedReader(decompressed, _BUFFER_SIZE)
    return stream


def _read_lines(name: str, stream: IO[bytes]) -> Iterator[bytes]:
    try:
        yield from stream
    # gzip raises EOFError for a truncated file, zlib.error for corrupt
    # compressed data and BadGzipFile (an OSError) for a bad header or CRC.
    except (OSError, EOFError, zlib.error) as error:
        raise InputError(
            f"cannot read {name!r}: {error}; check that it is a complete JSON "
            "lines file, plain or gzip"
        ) from error
