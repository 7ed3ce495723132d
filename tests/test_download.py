"""``vbayes data download``: fake IDX files served from 127.0.0.1; nothing leaves the machine."""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import socket
import struct
import threading
from pathlib import Path

import numpy as np
import pytest

from vbayes.cli import main
from vbayes.data import download as dl
from vbayes.errors import DataError


def _idx(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return gzip.compress(header + array.astype(np.uint8).tobytes(), mtime=0)


def _fake_files(directory: Path) -> dict[str, str]:
    """Small, valid MNIST-shaped IDX files in ``directory``; returns their SHA-256."""
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (60, 28, 28)),
        "train-labels-idx1-ubyte.gz": np.arange(60) % 10,
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (20, 28, 28)),
        "t10k-labels-idx1-ubyte.gz": np.arange(20) % 10,
    }
    directory.mkdir(parents=True, exist_ok=True)
    sums = {}
    for name, array in arrays.items():
        data = _idx(array)
        (directory / name).write_bytes(data)
        sums[name] = hashlib.sha256(data).hexdigest()
    return sums


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server(tmp_path: Path):
    """A local HTTP server on a random port over ``tmp_path/www``; yields (base URL, www, sums)."""
    www = tmp_path / "www"
    sums = _fake_files(www)
    handler = functools.partial(_Quiet, directory=str(www))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/", www, sums
    finally:
        httpd.shutdown()
        httpd.server_close()


def _closed_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now: connecting is refused
    return port


def test_download_success_and_files_load(server, tmp_path):
    url, www, sums = server
    out = dl.download("mnist", tmp_path / "out", [url], progress=False, _checksums=sums)
    assert sorted(p.name for p in out.iterdir()) == sorted(dl.FILES)  # no temporary files left
    for name in dl.FILES:
        assert (out / name).read_bytes() == (www / name).read_bytes()
    import vbayes.data

    data = vbayes.data.load("mnist", data_dir=out)
    assert data.x_test.shape[0] == 20


def test_mirrors_tried_in_order(server, tmp_path):
    url, _, sums = server
    refused = f"http://127.0.0.1:{_closed_port()}/"
    out = dl.download("mnist", tmp_path / "out", [refused, url + "missing/", url], progress=False, _checksums=sums)
    assert sorted(p.name for p in out.iterdir()) == sorted(dl.FILES)


def _assert_nothing_left(out: Path, existed: bool = False) -> None:
    if existed:
        assert list(out.iterdir()) == []
    else:
        assert not out.exists()


def test_checksum_mismatch_leaves_nothing(server, tmp_path):
    url, _, sums = server
    bad = dict(sums, **{"t10k-images-idx3-ubyte.gz": "0" * 64})  # the third file fails after two are written
    with pytest.raises(DataError, match="SHA-256 mismatch"):
        dl.download("mnist", tmp_path / "out", [url], progress=False, _checksums=bad)
    _assert_nothing_left(tmp_path / "out")


def test_404_leaves_nothing(server, tmp_path):
    url, www, sums = server
    (www / "t10k-labels-idx1-ubyte.gz").unlink()  # the last file is missing
    (tmp_path / "out").mkdir()  # an existing, empty directory stays, empty
    with pytest.raises(DataError, match="HTTP 404"):
        dl.download("mnist", tmp_path / "out", [url], progress=False, _checksums=sums)
    _assert_nothing_left(tmp_path / "out", existed=True)


def test_refused_connection_leaves_nothing(tmp_path):
    url = f"http://127.0.0.1:{_closed_port()}/"
    with pytest.raises(DataError, match="refused"):
        dl.download("mnist", tmp_path / "out", [url], progress=False, _checksums={f: "0" * 64 for f in dl.FILES})
    _assert_nothing_left(tmp_path / "out")


def test_cli_success_prints_data_dir(server, tmp_path, monkeypatch, capsys):
    url, _, sums = server
    monkeypatch.setitem(dl.SHA256, "mnist", sums)
    out = tmp_path / "mnist"
    assert main(["data", "download", "mnist", "--to", str(out), "--mirror", url, "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert f"--data-dir {out}" in printed
    assert sorted(p.name for p in out.iterdir()) == sorted(dl.FILES)


def test_cli_progress_bar_on_stderr(server, tmp_path, monkeypatch, capsys):
    url, _, sums = server
    monkeypatch.setitem(dl.SHA256, "mnist", sums)
    assert main(["data", "download", "mnist", "--to", str(tmp_path / "o"), "--mirror", url]) == 0
    assert "train-images-idx3-ubyte.gz" in capsys.readouterr().err


@pytest.mark.parametrize("failure", ["mismatch", "404", "refused"])
def test_cli_failure_one_line_exit_2(server, tmp_path, monkeypatch, capsys, failure):
    url, www, sums = server
    if failure == "mismatch":  # the published checksums do not match the fake files
        pass
    elif failure == "404":
        monkeypatch.setitem(dl.SHA256, "mnist", sums)
        url += "nothing-here/"
    else:
        monkeypatch.setitem(dl.SHA256, "mnist", sums)
        url = f"http://127.0.0.1:{_closed_port()}/"
    out = tmp_path / "out"
    status = main(["data", "download", "mnist", "--to", str(out), "--mirror", url, "--no-progress"])
    err = capsys.readouterr().err
    assert status == 2
    assert err.count("\n") == 1 and err.startswith("vbayes data: error:")
    assert not out.exists()


def test_existing_good_file_is_kept(server, tmp_path):
    url, www, sums = server
    out = tmp_path / "out"
    out.mkdir()
    first = dl.FILES[0]
    (out / first).write_bytes((www / first).read_bytes())
    (www / first).unlink()  # the server no longer has it: the local copy must be used
    dl.download("mnist", out, [url], progress=False, _checksums=sums)
    assert sorted(p.name for p in out.iterdir()) == sorted(dl.FILES)


def test_vae_without_data_dir_names_the_download_command(monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("VBAYES_DATA", raising=False)
    status = main(["vae", "--data", "mnist", "--out", str(tmp_path / "run"), "--epochs", "1", "--no-progress"])
    assert status == 2
    assert "vbayes data download mnist" in capsys.readouterr().err
