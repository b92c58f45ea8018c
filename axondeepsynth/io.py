"""Atomic file writes: a file is either its old self or wholly new, never torn, even when the
disk fills or the process is killed mid-write. Every file the framework writes goes through here."""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

from axondeepsynth.errors import DataError

_UMASK = os.umask(0)
os.umask(_UMASK)


def write_bytes(path: Path | str, data: bytes, durable: bool = False) -> Path:
    """Atomically write a file: a temporary sibling, renamed onto `path` once complete (and, if
    `durable`, flushed to disk first, so a crash leaves the old file or the new one, never a
    torn one). A full disk is a DataError naming the file; the old file stays as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes owner-only files
        os.replace(tmp, path)
    except OSError as err:
        if err.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        raise DataError(
            path,
            f"the disk is full ({len(data) / 2**20:.1f} MB to write); nothing was replaced",
            "free space (or move the run with hydra.run.dir=...), then re-run with resume=last",
        ) from None
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


def write_text(path: Path | str, text: str) -> Path:
    """Atomically write a text file."""
    return write_bytes(path, text.encode())
