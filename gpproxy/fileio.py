"""Atomic writes and checksums: a killed process never leaves a half file. JSON files whose name ends
in ``.gz`` are gzip-compressed (read_json / write_json)."""
from __future__ import annotations

import gzip
import hashlib
import json
import os
import tempfile
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0o022)  # reading the umask means setting it: put it straight back
    os.umask(mask)
    return mask


# mkstemp makes its file 0600; the file it becomes gets the mode open() would give it (caches and run
# directories are shared between the users of a machine), or keeps the mode of the file it replaces.
_NEW_FILE_MODE = 0o666 & ~_umask()


def atomic_write_bytes(path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = path.stat().st_mode & 0o7777
    except OSError:
        mode = _NEW_FILE_MODE
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_text(path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def read_json(path):
    """The JSON in ``path``, gunzipped first when its name ends in ``.gz``."""
    raw = Path(path).read_bytes()
    return json.loads(gzip.decompress(raw) if Path(path).suffix == ".gz" else raw)


def write_json(path, obj, **dumps) -> None:
    """``obj`` as JSON, atomically; gzip-compressed (reproducibly: no timestamp) when the name ends in ``.gz``."""
    data = (json.dumps(obj, **dumps) + "\n").encode("utf-8")
    atomic_write_bytes(path, gzip.compress(data, mtime=0) if Path(path).suffix == ".gz" else data)


def atomic_write_json(path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=1, sort_keys=False) + "\n")


def digest(data: bytes) -> str:
    """blake2b: a checksum that catches corruption at ~1 GB/s."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def file_digest(path) -> str:
    return digest(Path(path).read_bytes())


def foreign_entries(root, markers, own=()) -> list:
    """Names in an existing directory ``root`` that gpproxy did not write, when none of ``markers`` (the files
    its kind of directory holds) is there: besides ``own`` (what it writes before a marker), its lock and
    hidden temporaries. A run or cache writing there would overwrite or mix with a user's files."""
    root = Path(root)
    if not root.is_dir() or any((root / m).exists() for m in markers):
        return []
    return sorted(p.name for p in root.iterdir()
                  if p.name not in own and not p.name.startswith(".") and not p.name.endswith(".tmp"))
