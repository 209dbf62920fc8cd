"""Where the commands write: checked before any work starts (nothing is made by the check), and written so that
a failure leaves no partial file."""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

MIN_FREE = 1 << 20  # bytes a folder's file system must have free to be worth starting a run for


def check_folder(path: Any, flag: str) -> Path:
    """``path`` as a folder the command can create and write into, or ValueError naming ``flag``: under a file,
    a device, a read-only or full file system. Nothing is created here."""
    if str(path) == "":
        raise ValueError(f"{flag}: expected a folder, got an empty path")
    p = Path(path)
    probe = p
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        what = "a file" if probe.is_file() else "not a folder (a device or special file)"
        raise ValueError(f"{flag}: cannot write to {p}: {probe} is {what}")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ValueError(f"{flag}: cannot write to {p}: {probe} is not writable")
    try:
        free = shutil.disk_usage(probe).free
    except OSError:
        free = MIN_FREE
    if free < MIN_FREE:
        raise ValueError(f"{flag}: cannot write to {p}: its file system has only {free} bytes free")
    return p


def check_file(path: Any, flag: str) -> Path:
    """``path`` as a new or regular file in an existing, writable folder, or ValueError naming ``flag``."""
    if path is None or str(path) == "":
        raise ValueError(f"{flag}: expected a file name, got an empty path")
    p = Path(path)
    if p.exists() and not p.is_file():
        raise ValueError(f"{flag}: cannot write to {p}: it is {'a folder' if p.is_dir() else 'not a regular file'}")
    folder = p.parent if str(p.parent) else Path(".")
    if not folder.is_dir():
        why = "is not a folder" if folder.exists() else "does not exist"
        raise ValueError(f"{flag}: cannot write to {p}: {folder} {why}")
    check_folder(folder, flag)
    return p


def write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder, so that a failure (a full disk)
    leaves the old file or none, never a partial one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
