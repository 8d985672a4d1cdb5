"""Downloads: checksum checked, next mirror on failure, nothing half-written left behind."""

import hashlib
import os
import stat
import sys

import numpy
import pytest

from tinyconv.datasets.download import DownloadError, download_file, md5_of_file

PAYLOAD = b"the published bytes " * 1000
MD5 = hashlib.md5(PAYLOAD).hexdigest()


def leftovers(folder):
    return sorted(path.name for path in folder.iterdir() if path.name.startswith("."))


def test_downloads_and_checks_the_md5(tmp_path, mirror):
    mirror.files["/a/file.gz"] = PAYLOAD
    target = download_file(
        [f"{mirror.url}/a/file.gz"], tmp_path / "sub" / "file.gz", MD5, quiet=True
    )
    assert target.read_bytes() == PAYLOAD
    assert md5_of_file(target) == MD5
    assert leftovers(target.parent) == []


def test_checksum_failure_moves_on_to_the_next_mirror(tmp_path, mirror):
    mirror.files["/bad/file.gz"] = PAYLOAD[:-1] + b"!"
    mirror.files["/good/file.gz"] = PAYLOAD
    urls = [f"{mirror.url}/bad/file.gz", f"{mirror.url}/good/file.gz"]
    target = download_file(urls, tmp_path / "file.gz", MD5, quiet=True)
    assert target.read_bytes() == PAYLOAD
    assert mirror.requests == ["/bad/file.gz", "/good/file.gz"]
    assert leftovers(tmp_path) == []


def test_http_error_and_refused_connection_move_on(tmp_path, mirror, closed_port_url):
    mirror.files["/good/file.gz"] = PAYLOAD
    urls = [
        f"{closed_port_url}/file.gz",
        f"{mirror.url}/missing/file.gz",
        f"{mirror.url}/good/file.gz",
    ]
    target = download_file(urls, tmp_path / "file.gz", MD5, quiet=True)
    assert target.read_bytes() == PAYLOAD


def test_every_mirror_failing_raises_with_each_reason(tmp_path, mirror, closed_port_url):
    mirror.files["/bad/file.gz"] = b"not it"
    urls = [
        f"{closed_port_url}/file.gz",
        f"{mirror.url}/missing/file.gz",
        f"{mirror.url}/bad/file.gz",
    ]
    with pytest.raises(DownloadError) as info:
        download_file(urls, tmp_path / "file.gz", MD5, quiet=True)
    message = str(info.value)
    assert "could not download file.gz" in message
    assert all(url in message for url in urls)
    assert "HTTP 404" in message and "does not match the published" in message
    assert not (tmp_path / "file.gz").exists()
    assert leftovers(tmp_path) == []


def test_a_connection_cut_short_is_rejected(tmp_path, mirror):
    mirror.files["/file.gz"] = PAYLOAD
    mirror.cut_short.add("/file.gz")
    with pytest.raises(DownloadError):
        download_file([f"{mirror.url}/file.gz"], tmp_path / "file.gz", None, quiet=True)
    assert not (tmp_path / "file.gz").exists()


def test_a_failed_download_keeps_the_existing_file(tmp_path, closed_port_url):
    target = tmp_path / "file.gz"
    target.write_bytes(b"old")
    with pytest.raises(DownloadError):
        download_file([f"{closed_port_url}/file.gz"], target, MD5, quiet=True)
    assert target.read_bytes() == b"old"


def test_file_urls_work(tmp_path):
    source = tmp_path / "source.gz"
    source.write_bytes(PAYLOAD)
    target = download_file([source.as_uri()], tmp_path / "out" / "file.gz", MD5, quiet=True)
    assert target.read_bytes() == PAYLOAD


def test_progress_lines_go_to_stderr(tmp_path, mirror, capsys):
    mirror.files["/file.gz"] = PAYLOAD
    download_file([f"{mirror.url}/missing.gz", f"{mirror.url}/file.gz"], tmp_path / "f.gz", MD5)
    err = capsys.readouterr().err
    assert "Downloading" in err and "trying the next mirror" in err


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
def test_a_download_gets_the_permissions_open_would_give(tmp_path, mirror):
    mirror.files["/file.gz"] = PAYLOAD
    previous = os.umask(0o022)
    try:
        target = download_file([f"{mirror.url}/file.gz"], tmp_path / "f.gz", MD5, quiet=True)
    finally:
        os.umask(previous)
    # readable by everyone, as a file saved by any other program: not owner-only (0o600)
    assert stat.S_IMODE(target.stat().st_mode) == 0o644


@pytest.mark.parametrize(
    "change, error, message",
    [
        ({"urls": "http://127.0.0.1:9/file.gz"}, TypeError, "not one string"),
        ({"urls": b"http://127.0.0.1:9/file.gz"}, TypeError, "not one string"),
        ({"urls": []}, ValueError, r"urls=\[\] is empty"),
        ({"urls": [1]}, TypeError, "list of URL strings"),
        ({"urls": None}, TypeError, "urls=None"),
        ({"destination": 5}, TypeError, "destination=5"),
        ({"md5": 123}, TypeError, "md5=123"),
        ({"md5": "abc"}, ValueError, "md5='abc' is not an MD5 hex digest"),
        ({"md5": MD5 + "0"}, ValueError, "32 hex digits"),
        ({"timeout": 0}, ValueError, "timeout=0"),
        ({"timeout": float("nan")}, ValueError, "timeout=nan"),
        ({"timeout": float("inf")}, ValueError, "timeout=inf"),
        ({"timeout": "5"}, TypeError, "timeout='5'"),
        ({"timeout": True}, TypeError, "timeout=True"),
        ({"quiet": "yes"}, TypeError, "quiet='yes'"),
    ],
)
def test_arguments_are_checked_before_anything_is_fetched(tmp_path, mirror, change, error, message):
    arguments = {
        "urls": [f"{mirror.url}/file.gz"],
        "destination": tmp_path / "sub" / "file.gz",
        "md5": MD5,
        "timeout": 5.0,
        "quiet": True,
    }
    arguments.update(change)
    with pytest.raises(error, match=message):
        download_file(**arguments)
    assert mirror.requests == [] and list(tmp_path.iterdir()) == []


def test_an_upper_case_md5_and_a_tuple_of_urls_are_accepted(tmp_path, mirror):
    mirror.files["/file.gz"] = PAYLOAD
    urls = (f"{mirror.url}/file.gz",)
    target = download_file(urls, tmp_path / "f.gz", MD5.upper(), timeout=5, quiet=True)
    assert target.read_bytes() == PAYLOAD
    # a NumPy number is a number of seconds too
    assert download_file(urls, tmp_path / "g.gz", MD5, timeout=numpy.float32(5), quiet=True)
