"""Files written atomically: into a temporary file in the same folder, then renamed over the old one, so a reader
sees the old file or the new one, never half of one. The project's one writer (checkpoints, reports, caches)."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable


def temp_beside(path: Path) -> tuple[int, str]:
    """A temporary file in the folder of `path` (so the final rename is atomic), readable like a normal file."""
    fd, tmp = tempfile.mkstemp(dir=Path(path).parent, prefix=f".{Path(path).name}.", suffix=".tmp")
    os.chmod(tmp, 0o644)
    return fd, tmp


def atomic_write(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """write(file object) into a temporary file beside `path`, flushed to disk, then renamed to `path`."""
    path = Path(path)
    fd, tmp = temp_beside(path)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda f: f.write(data))


def atomic_write_json(path: Path, obj) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, allow_nan=False) + "\n").encode())
