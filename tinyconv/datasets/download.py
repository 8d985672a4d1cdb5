"""Downloading a file safely: from the first mirror that works, checked, atomically.

A download goes to a temporary file beside its destination while its MD5 is
computed; only a complete file with the published checksum is renamed into place
(``tinyconv.files.write_atomically``), so an interrupted or corrupted download
never leaves a file that looks finished. When a mirror fails (no connection, an
HTTP error, a wrong checksum) the next one is tried; when all fail, the error lists
each URL and why it failed.
"""

from __future__ import annotations

import hashlib
import http.client
import math
import os
import re
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from tinyconv import dtypes
from tinyconv.files import write_atomically

__all__ = ["DownloadError", "download_file", "md5_of_file"]

_CHUNK = 1 << 20
# Some servers refuse urllib's default User-Agent.
_HEADERS = {"User-Agent": "tinyconv"}


class DownloadError(RuntimeError):
    """No mirror gave a file with the expected checksum."""


def md5_of_file(path: str | os.PathLike) -> str:
    """The MD5 hex digest of a file, read in pieces."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as file:
        while chunk := file.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def download_file(
    urls: Sequence[str],
    destination: str | os.PathLike,
    md5: str | None = None,
    timeout: float = 30.0,
    quiet: bool = False,
) -> Path:
    """Download one file, trying ``urls`` in order until one gives the right bytes.

    Args:
        urls: the same file on each mirror (``http``, ``https`` or ``file`` URLs).
        destination: the final path; its folder is created if needed.
        md5: the published MD5 hex digest; a download that differs is rejected.
        timeout: seconds to wait for a server before giving up on that mirror.
        quiet: print nothing (by default, one line per attempt goes to stderr).

    Returns:
        ``destination`` as a ``Path``.

    Raises:
        DownloadError: every mirror failed; the message says how each one did.
    """
    _check_arguments(urls, destination, md5, timeout, quiet)
    destination, timeout = Path(destination), float(timeout)  # sockets take no NumPy number
    destination.parent.mkdir(parents=True, exist_ok=True)
    failures = []
    for url in urls:
        if not quiet:
            print(f"Downloading {url} to {destination}", file=sys.stderr)
        try:
            _download_checked(url, destination, md5, timeout)
            return destination
        except (OSError, http.client.HTTPException, ValueError) as error:
            # OSError covers URLError, HTTPError, timeouts and refused connections;
            # ValueError a malformed URL or a checksum mismatch.
            reason = _describe(error)
            failures.append(f"  {url}: {reason}")
            if not quiet:
                print(f"  failed ({reason}); trying the next mirror", file=sys.stderr)
    raise DownloadError(
        f"could not download {destination.name} from any mirror:\n" + "\n".join(failures)
    )


def _check_arguments(
    urls: object, destination: object, md5: object, timeout: object, quiet: object
) -> None:
    if isinstance(urls, (str, bytes)):
        # a string is a sequence too: each of its characters would be taken for a URL
        raise TypeError(f"urls={urls!r} must be a list of URLs, not one string: pass [{urls!r}]")
    if not isinstance(urls, Sequence) or not all(isinstance(url, str) for url in urls):
        raise TypeError(f"urls={urls!r} must be a list of URL strings")
    if not urls:
        raise ValueError("urls=[] is empty; expected at least one URL")
    if not isinstance(destination, (str, os.PathLike)):
        raise TypeError(f"destination={destination!r} must be a str or os.PathLike")
    if md5 is not None:
        if not isinstance(md5, str):
            raise TypeError(f"md5={md5!r} must be a hex digest string or None")
        if not re.fullmatch(r"[0-9a-fA-F]{32}", md5):
            raise ValueError(f"md5={md5!r} is not an MD5 hex digest; expected 32 hex digits")
    if not dtypes.is_real(timeout):
        raise TypeError(f"timeout={timeout!r} must be a number of seconds")
    if not 0 < timeout < math.inf:  # nan fails it too
        raise ValueError(f"timeout={timeout!r} must be a positive, finite number of seconds")
    if not isinstance(quiet, bool):
        raise TypeError(f"quiet={quiet!r} must be True or False")


def _download_checked(url: str, destination: Path, md5: str | None, timeout: float) -> None:
    """Stream ``url`` into a temporary file, check it, and only then put it in place."""

    def write(file: BinaryIO) -> None:
        digest = hashlib.md5(usedforsecurity=False)
        request = urllib.request.Request(url, headers=_HEADERS)
        with urllib.request.urlopen(request, timeout=timeout) as response:
            expected_length = response.headers.get("Content-Length")
            received = 0
            while chunk := response.read(_CHUNK):
                digest.update(chunk)
                file.write(chunk)
                received += len(chunk)
        if expected_length is not None and received != int(expected_length):
            raise ValueError(f"connection closed after {received} of {expected_length} bytes")
        # raising here makes write_atomically drop the temporary file
        if md5 is not None and digest.hexdigest() != md5.lower():
            raise ValueError(f"MD5 {digest.hexdigest()} does not match the published {md5}")

    write_atomically(destination, write)


def _describe(error: BaseException) -> str:
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code} {error.reason}"
    if isinstance(error, urllib.error.URLError):
        return f"{error.reason}"
    return str(error) or type(error).__name__
