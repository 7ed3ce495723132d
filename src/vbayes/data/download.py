"""Download the full MNIST and Fashion-MNIST IDX files (``vbayes data download``).

Only the standard library's ``urllib`` talks to the network. Each of the four ``.gz`` files is
fetched from the first mirror that serves it, checked against its published SHA-256 and only
then renamed into place, so a failed download (checksum mismatch, refused connection, HTTP
error) leaves nothing behind: neither the partial file nor any file this call already wrote.

The SHA-256 values and sizes are the ones TensorFlow Datasets publishes for these files
(``tensorflow_datasets/url_checksums/mnist.txt`` and ``fashion_mnist.txt``); the MNIST files
are byte-identical on every mirror listed here.
"""

from __future__ import annotations

import hashlib
import os
import socket
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from vbayes.errors import DataError

#: The four files every IDX data set consists of (what :func:`vbayes.data.mnist.load_idx_dataset` reads).
FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)

#: Standard mirrors, tried in order for each file.
MIRRORS: dict[str, tuple[str, ...]] = {
    "mnist": (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    ),
    "fashion-mnist": (
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    ),
}

#: Published SHA-256 (TensorFlow Datasets' url_checksums) of each file.
SHA256: dict[str, dict[str, str]] = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
    },
}

#: Published sizes in bytes (for the progress bar when a server sends no Content-Length).
SIZES: dict[str, dict[str, int]] = {
    "mnist": {
        "train-images-idx3-ubyte.gz": 9912422,
        "train-labels-idx1-ubyte.gz": 28881,
        "t10k-images-idx3-ubyte.gz": 1648877,
        "t10k-labels-idx1-ubyte.gz": 4542,
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": 26421880,
        "train-labels-idx1-ubyte.gz": 29515,
        "t10k-images-idx3-ubyte.gz": 4422102,
        "t10k-labels-idx1-ubyte.gz": 5148,
    },
}

CHUNK = 1 << 16


class _Failed(Exception):
    """One mirror could not deliver one file (the next mirror is tried)."""


def _fetch(url: str, dest: Path, expected: str, timeout: float, progress: Callable[[int | None], Any] | None) -> None:
    """Stream ``url`` into ``dest`` (a temporary file) and check its SHA-256.

    ``progress(total)`` makes a progress bar (``total``: the Content-Length, if sent).
    """
    digest = hashlib.sha256()
    bar = None
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(dest, "wb") as out:
            length = response.headers.get("Content-Length")
            if progress is not None:
                bar = progress(int(length) if length and length.isdigit() else None)
            while True:
                chunk = response.read(CHUNK)
                if not chunk:
                    break
                out.write(chunk)
                digest.update(chunk)
                if bar is not None:
                    bar.update(len(chunk))
    except urllib.error.HTTPError as err:
        raise _Failed(f"{url}: HTTP {err.code} {err.reason}") from None
    except urllib.error.URLError as err:
        reason = err.reason.strerror if isinstance(err.reason, OSError) and err.reason.strerror else err.reason
        raise _Failed(f"{url}: {reason}") from None
    except (OSError, socket.timeout) as err:  # connection reset mid-stream, timeouts, disk full
        raise _Failed(f"{url}: {err.strerror or err}") from None
    finally:
        if bar is not None:
            bar.close()
    got = digest.hexdigest()
    if got != expected:
        raise _Failed(f"{url}: SHA-256 mismatch (got {got[:12]}..., expected {expected[:12]}...)")


def download(
    name: str,
    to: str | os.PathLike[str],
    mirrors: Sequence[str] | None = None,
    *,
    progress: bool = True,
    timeout: float = 60.0,
    _checksums: Mapping[str, str] | None = None,
) -> Path:
    """Download the four IDX ``.gz`` files of ``name`` (``"mnist"`` or ``"fashion-mnist"``) into ``to``.

    Each file comes from the first of ``mirrors`` (default :data:`MIRRORS`; each a URL prefix
    the file name is appended to) that serves it with the published SHA-256. A file already in
    ``to`` with the right checksum is kept. If any file cannot be fetched from any mirror, a
    :class:`~vbayes.errors.DataError` names the failures and every file this call wrote is
    removed again. Returns ``to``, the directory to pass as ``--data-dir``.

    ``_checksums`` (file name -> SHA-256) replaces the published ones; it exists for tests that
    serve small fake files.
    """
    if name not in SHA256:
        raise DataError(f"unknown data set {name!r} to download; choose one of {', '.join(SHA256)}")
    checksums = dict(SHA256[name] if _checksums is None else _checksums)
    urls = list(MIRRORS[name] if mirrors is None else mirrors)
    if not urls:
        raise DataError("no mirror to download from")
    urls = [u if u.endswith("/") else u + "/" for u in urls]
    root = Path(to)
    if root.exists() and not root.is_dir():
        raise DataError(f"--to {root} exists and is not a directory")
    made_root = not root.exists()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DataError(f"cannot create {root}: {err.strerror or err}") from None
    written: list[Path] = []
    try:
        for fname in FILES:
            target = root / fname
            if target.is_file() and _sha256(target) == checksums[fname]:
                continue
            _download_one(name, fname, urls, root, checksums[fname], timeout, progress)
            written.append(target)
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        if made_root:
            try:
                root.rmdir()  # only if it is still empty
            except OSError:
                pass
        raise
    return root


def _download_one(name: str, fname: str, urls: list[str], root: Path, expected: str,
                  timeout: float, progress: bool) -> None:  # fmt: skip
    def bar(total: int | None) -> Any:
        from tqdm.auto import tqdm

        return tqdm(total=total or SIZES.get(name, {}).get(fname), desc=fname, unit="B", unit_scale=True,
                    unit_divisor=1024, leave=False, dynamic_ncols=True)  # fmt: skip

    errors: list[str] = []
    for base in urls:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{fname}.", suffix=".part", dir=root)
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            _fetch(base + fname, tmp, expected, timeout, bar if progress else None)
            os.replace(tmp, root / fname)
            return
        except _Failed as err:
            errors.append(str(err))
        finally:
            tmp.unlink(missing_ok=True)
    raise DataError(f"{name}: could not download {fname}: " + "; ".join(errors))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()
