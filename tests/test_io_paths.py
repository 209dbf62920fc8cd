"""What sn.save may write over and sn.load may open: only regular files (or a new path); a symlink is written
through to its target; a file keeps its permissions; a FIFO, a device or a folder is refused before anything
is opened, so nothing blocks and nothing of the system's is replaced."""
from __future__ import annotations

import io
import os
import stat
import subprocess
import sys

import numpy as np
import pytest

import sensinet as sn

posix = pytest.mark.skipif(os.name != "posix", reason="FIFOs, device nodes and permission bits are POSIX")


def _net():
    return sn.Network(3, [sn.Dense(4, "relu"), sn.Dense(1)], seed=0)


@posix
def test_fifo_is_refused_by_save_and_load_without_blocking(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match=r"is a FIFO \(named pipe\), not a regular file"):
        sn.save(_net(), fifo)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    # in a child process with a deadline: a regression would block forever on the open
    code = f"import sensinet as sn\ntry:\n    sn.load({str(fifo)!r})\nexcept ValueError as e:\n    print(e)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "not a regular file" in r.stdout


@posix
def test_device_node_is_never_replaced(tmp_path):
    node = tmp_path / "null"
    try:
        os.mknod(node, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # a /dev/null of our own
    except (PermissionError, OSError) as exc:
        pytest.skip(f"cannot make a device node here ({exc})")
    with pytest.raises(ValueError, match="is a character device"):
        sn.save(_net(), node)
    assert stat.S_ISCHR(os.lstat(node).st_mode)
    with pytest.raises(ValueError, match="is a character device"):
        sn.load(node)


def test_folder_is_refused(tmp_path):
    with pytest.raises(ValueError, match="is a folder"):
        sn.save(_net(), tmp_path)


@posix
def test_symlink_is_written_through_and_stays_a_link(tmp_path):
    target = tmp_path / "model.npz"
    link = tmp_path / "latest.npz"
    sn.save(_net(), target)
    link.symlink_to(target)
    other = sn.Network(3, [sn.Dense(4, "relu"), sn.Dense(1)], seed=7)
    sn.save(other, link)
    assert link.is_symlink() and os.readlink(link) == str(target)
    np.testing.assert_array_equal(sn.load(target).parameters, other.parameters)
    dangling = tmp_path / "new_link.npz"
    dangling.symlink_to(tmp_path / "not_yet.npz")
    sn.save(other, dangling)  # a link to a new path: the file is made there
    assert (tmp_path / "not_yet.npz").is_file() and dangling.is_symlink()


@posix
def test_existing_file_keeps_its_mode(tmp_path):
    path = tmp_path / "private.npz"
    sn.save(_net(), path)
    os.chmod(path, 0o600)
    sn.save(_net(), path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_text_mode_file_object_and_nul_in_the_name(tmp_path):
    with open(tmp_path / "t.npz", "w") as fh:
        with pytest.raises(TypeError, match="binary file object"):
            sn.save(_net(), fh)
    with pytest.raises(ValueError, match="without NUL characters"):
        sn.save(_net(), "a\0b")
    with pytest.raises(ValueError, match="without NUL characters"):
        sn.load("a\0b")
    buf = io.BytesIO()
    sn.save(_net(), buf)
    assert len(buf.getvalue()) > 0
