"""write_atomically: the old file or the new one, never half of one, and nothing left over."""

import errno
import os
import stat
import sys

import pytest

from tinyconv.files import write_atomically

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")


def leftovers(folder):
    return sorted(path.name for path in folder.iterdir() if path.name.startswith("."))


def disk_full_after(data):
    """A ``write`` that writes ``data``, then fails as a full disk does."""

    def write(file):
        file.write(data)
        raise OSError(errno.ENOSPC, "No space left on device")

    return write


def test_writes_what_write_writes_and_returns_the_path(tmp_path):
    target = tmp_path / "out.bin"
    result = write_atomically(target, lambda file: (file.write(b"ab"), file.write(b"cd")))
    assert result == target
    assert target.read_bytes() == b"abcd"
    assert leftovers(tmp_path) == []


def test_replaces_an_existing_file(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old content that is longer")
    write_atomically(str(target), lambda file: file.write(b"new"))
    assert target.read_bytes() == b"new"


def test_a_failure_mid_write_keeps_the_old_file_and_removes_the_temporary(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"the valid old file")
    with pytest.raises(OSError) as info:
        write_atomically(target, disk_full_after(b"half of the n"))
    assert info.value.errno == errno.ENOSPC
    assert target.read_bytes() == b"the valid old file"
    assert leftovers(tmp_path) == []


def test_a_failure_with_no_old_file_leaves_nothing(tmp_path):
    with pytest.raises(OSError):
        write_atomically(tmp_path / "out.bin", disk_full_after(b"partial"))
    assert list(tmp_path.iterdir()) == []


def test_an_interrupt_also_removes_the_temporary(tmp_path):
    def interrupted(file):
        file.write(b"partial")
        raise KeyboardInterrupt

    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(KeyboardInterrupt):
        write_atomically(target, interrupted)
    assert target.read_bytes() == b"old"
    assert leftovers(tmp_path) == []


def test_the_new_bytes_are_fsynced_before_the_rename(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (events.append("fsync"), real_fsync(fd)))
    monkeypatch.setattr(
        os, "replace", lambda *paths: (events.append("replace"), real_replace(*paths))
    )
    write_atomically(tmp_path / "out.bin", lambda file: file.write(b"x"))
    # the file before the rename; the folder after it (where the platform allows)
    assert events[:2] == ["fsync", "replace"]


@posix_only
def test_an_existing_file_keeps_its_permissions(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    target.chmod(0o640)
    write_atomically(target, lambda file: file.write(b"new"))
    assert stat.S_IMODE(target.stat().st_mode) == 0o640


@posix_only
def test_a_new_file_gets_the_permissions_open_would_give(tmp_path):
    previous = os.umask(0o027)
    try:
        write_atomically(tmp_path / "out.bin", lambda file: file.write(b"new"))
    finally:
        os.umask(previous)
    # 0o666 less the umask, not mkstemp's owner-only 0o600
    assert stat.S_IMODE((tmp_path / "out.bin").stat().st_mode) == 0o640


@posix_only
def test_a_symbolic_link_is_kept_and_the_file_it_points_at_replaced(tmp_path):
    (tmp_path / "real").mkdir()
    real = tmp_path / "real" / "data.bin"
    real.write_bytes(b"old")
    link = tmp_path / "link.bin"
    link.symlink_to(real)
    write_atomically(link, lambda file: file.write(b"new"))
    assert link.is_symlink()
    assert real.read_bytes() == b"new"
    assert leftovers(tmp_path) == [] and leftovers(tmp_path / "real") == []


def test_a_missing_folder_is_reported_with_the_path_asked_for_and_creates_nothing(tmp_path):
    target = tmp_path / "no-such-folder" / "state.bin"
    with pytest.raises(FileNotFoundError, match="cannot write .*no-such-folder/state.bin: No such"):
        write_atomically(target, lambda file: file.write(b"x"))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"path": 123, "write": lambda file: None}, "path=123"),
        ({"path": "out.bin", "write": b"bytes"}, "write=b'bytes' must be a callable"),
    ],
)
def test_arguments_are_checked(tmp_path, monkeypatch, arguments, message):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(TypeError, match=message):
        write_atomically(**arguments)
    assert list(tmp_path.iterdir()) == []
