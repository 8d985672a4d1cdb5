"""Writing a file atomically: readers see the old file or the new one, never half of one.

The bytes go to a temporary file in the destination's folder; once they are flushed
and fsynced, ``os.replace`` renames it over the destination (atomic within one file
system), and the folder is fsynced so the rename itself survives a crash. When
writing fails (a full disk, an exception in the caller's code, Ctrl-C) the temporary
file is removed and the old file is left as it was.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

__all__ = ["write_atomically"]


def write_atomically(path: str | os.PathLike, write: Callable[[BinaryIO], object]) -> Path:
    """Replace the file at ``path`` with what ``write`` writes, all at once or not at all.

    Args:
        path: the destination; its folder must exist. A symbolic link is followed, so
            the file it points at is replaced and the link kept.
        write: called once with a binary file object open for writing; it may write in
            as many pieces as it likes but must not close the file.

    Returns:
        The destination as a ``Path``.

    The new file gets the old file's permission bits, or, when there was no old file,
    those ``open`` would have given it (``0o666`` less the umask).
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path={path!r} must be a str or os.PathLike")
    if not callable(write):
        raise TypeError(f"write={write!r} must be a callable taking a binary file object")
    path = Path(path)
    # Replacing a link would turn it into a plain file; replace what it points at.
    target = Path(os.path.realpath(path)) if path.is_symlink() else path
    handle, temporary = _create_temporary(target)
    try:
        with os.fdopen(handle, "wb") as file:
            write(file)
            file.flush()
            # the bytes must be on disk before the name points at them
            os.fsync(file.fileno())
        _copy_permissions(target, temporary)
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _fsync_folder(target.parent)
    return path


def _create_temporary(target: Path) -> tuple[int, Path]:
    """A new, empty hidden file beside ``target``: its descriptor and path.

    Unlike ``tempfile.mkstemp`` (mode 0o600), it is created with mode 0o666, which the
    kernel narrows by the umask, as ``open`` would; so there is no need to read the
    umask, which cannot be done without changing it for every thread.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        temporary = target.parent / f".{target.name}.{secrets.token_hex(8)}.tmp"
        try:
            return os.open(temporary, flags, 0o666), temporary
        except FileExistsError:
            continue
        except OSError as error:
            # name the file asked for, not the hidden temporary
            raise type(error)(error.errno, f"cannot write {target}: {error.strerror}") from None
    raise FileExistsError(f"could not create a temporary file beside {target}")


def _copy_permissions(target: Path, temporary: Path) -> None:
    """Give the new file the permission bits of the file it replaces, if there is one."""
    try:
        mode = target.stat().st_mode & 0o777
    except FileNotFoundError:
        return
    os.chmod(temporary, mode)


def _fsync_folder(folder: Path) -> None:
    """Make the rename durable; some platforms (Windows) cannot open a folder."""
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)
