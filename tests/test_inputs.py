"""Minibatch loading: noise, CIFAR python pickles (faked), npz, normalisation, errors."""
from __future__ import annotations

import json
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from gpproxy.errors import DataError
from gpproxy.inputs import NORMALISATIONS, InputSpec, load_batch, parse_input_spec

SHARED_IMAGES = Path(__file__).resolve().parents[2] / "shared" / "data" / "images"
JPEG_NPZ = SHARED_IMAGES / "cifar10_jpeg_subset_2000.npz"
FOOLBOX_NPZ = SHARED_IMAGES / "cifar_foolbox_samples.npz"


# --------------------------------------------------------------------------- fixtures


def _py2_str(b: bytes) -> bytes:
    """A Python 2 ``str`` opcode (SHORT_BINSTRING / BINSTRING), as cPickle wrote it."""
    return (b"U" + bytes([len(b)]) + b) if len(b) < 256 else (b"T" + struct.pack("<i", len(b)) + b)


def _py2_int(v: int) -> bytes:
    return b"K" + bytes([v]) if 0 <= v < 256 else b"J" + struct.pack("<i", v)


def _py2_value(v) -> bytes:
    if isinstance(v, bytes):
        return _py2_str(v)
    if isinstance(v, list):
        return b"](" + b"".join(_py2_str(e) if isinstance(e, bytes) else _py2_int(int(e)) for e in v) + b"e"
    # A uint8 2-D ndarray the way numpy 1.x under Python 2 pickled it.
    dtype = (b"cnumpy\ndtype\n" + _py2_str(b"u1") + _py2_int(0) + _py2_int(1) + b"\x87R"
             + b"(" + _py2_int(3) + _py2_str(b"|") + b"NNN" + _py2_int(-1) + _py2_int(-1) + _py2_int(0) + b"tb")
    return (b"cnumpy.core.multiarray\n_reconstruct\n" + b"cnumpy\nndarray\n" + _py2_int(0) + b"\x85"
            + _py2_str(b"b") + b"\x87R" + b"(" + _py2_int(1) + _py2_int(v.shape[0]) + _py2_int(v.shape[1])
            + b"\x86" + dtype + b"\x89" + _py2_str(v.tobytes()) + b"tb")


def py2_pickle(batch: dict) -> bytes:
    """Byte-for-byte the layout of the official CIFAR python batches (protocol 2, Python 2 strs)."""
    return b"\x80\x02}(" + b"".join(_py2_str(k) + _py2_value(v) for k, v in batch.items()) + b"u."


def planar_images(n: int, offset: int) -> np.ndarray:
    """N×3072 rows whose R, G, B planes are constant offset+i, +100, +200: easy to check layout."""
    rows = np.empty((n, 3, 1024), dtype=np.uint8)
    for i in range(n):
        rows[i] = np.array([offset + i, offset + i + 100, offset + i + 200], dtype=np.uint8)[:, None]
    return rows.reshape(n, 3072)


@pytest.fixture
def fake_cifar10(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for b in range(1, 6):
        data = planar_images(4, offset=(b - 1) * 4)
        labels = [(b * 4 + i) % 10 for i in range(4)]
        batch = {b"batch_label": f"training batch {b} of 5".encode(), b"labels": labels, b"data": data}
        (folder / f"data_batch_{b}").write_bytes(py2_pickle(batch))
    test = {b"batch_label": b"testing batch 1 of 1", b"labels": [0, 1], b"data": planar_images(2, 50)}
    (folder / "test_batch").write_bytes(py2_pickle(test))
    return tmp_path


@pytest.fixture
def tiny_npz(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "tiny.npz"
    np.savez(path, names=np.array(["a"]), x_train=rng.integers(0, 256, (12, 8, 8, 3), dtype=np.uint8),
             y_train=np.arange(12) % 10, x_test=rng.integers(0, 256, (5, 8, 8, 3), dtype=np.uint8),
             y_test=np.arange(5) + 100)
    return path


# --------------------------------------------------------------------------- specs


def test_parse_input_spec_roundtrip():
    cases = {
        "noise": InputSpec("noise"),
        "cifar10:/data/cifar": InputSpec("cifar10", "/data/cifar"),
        "CIFAR100:rel/dir": InputSpec("cifar100", "rel/dir"),
        "npz:/d/images.npz": InputSpec("npz", "/d/images.npz"),
        "npz:/d/images.npz:x_test": InputSpec("npz", "/d/images.npz", "x_test"),
    }
    for text, spec in cases.items():
        assert parse_input_spec(text) == spec
        assert parse_input_spec(spec.describe()) == spec
    assert parse_input_spec(" noise ").describe() == "noise"
    for bad in ("imagenet:/x", "cifar10", "cifar10:", "noise:abc", ""):
        with pytest.raises(DataError, match="input|unknown"):
            parse_input_spec(bad)


# --------------------------------------------------------------------------- noise


def test_noise_determinism_and_stats():
    x, y, info = load_batch("noise", 64, seed=3, num_classes=10, resolution=32)
    x2, y2, _ = load_batch("noise", 64, seed=3, num_classes=10, resolution=32)
    x3, _, _ = load_batch("noise", 64, seed=4, num_classes=10, resolution=32)
    assert x.shape == (64, 3, 32, 32) and x.dtype == torch.float32
    assert y.shape == (64,) and y.dtype == torch.int64
    assert torch.equal(x, x2) and torch.equal(y, y2) and not torch.equal(x, x3)
    assert abs(float(x.mean())) < 0.02 and abs(float(x.std()) - 1.0) < 0.02
    assert int(y.min()) >= 0 and int(y.max()) < 10 and len(set(y.tolist())) > 5
    x16, _, _ = load_batch("noise", 2, seed=0, resolution=16, num_classes=120)
    assert x16.shape == (2, 3, 16, 16)
    assert info["kind"] == "noise" and info["seed"] == 3 and info["batch_size"] == 64
    assert info["labels_wrapped"] is False
    json.dumps(info)


# --------------------------------------------------------------------------- CIFAR dirs


def test_fake_cifar10_dir(fake_cifar10):
    for spec in (f"cifar10:{fake_cifar10}", f"cifar10:{fake_cifar10 / 'cifar-10-batches-py'}"):
        x, y, info = load_batch(spec, 6, seed=1, normalisation="none")
        assert x.shape == (6, 3, 32, 32) and x.dtype == torch.float32
        assert info["pool_size"] == 20  # five training batches of 4, test batch unused
        assert info["files"] == [f"data_batch_{b}" for b in range(1, 6)]
        assert info["sha256_of"] == "data_batch_1" and len(info["sha256"]) == 64
        # Pixel values identify the global index: R = index, G = index+100, B = index+200.
        pixels = torch.round(x * 255).to(torch.int64)
        for k, idx in enumerate(info["indices"]):
            assert pixels[k, :, 5, 7].tolist() == [idx, idx + 100, idx + 200]
            assert int(y[k]) == (idx + 4) % 10
        json.dumps(info)
    x2, y2, info2 = load_batch(f"cifar10:{fake_cifar10}", 6, seed=1, normalisation="none")
    assert info2["indices"] == info["indices"] and torch.equal(x, x2)
    _, _, info3 = load_batch(f"cifar10:{fake_cifar10}", 6, seed=2)
    assert info3["indices"] != info["indices"]


def test_fake_cifar100_dir_wraps_labels(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    fine = [97, 3, 55, 12, 40, 81]
    batch = {b"filenames": [b"a"], b"fine_labels": fine, b"coarse_labels": [0] * 6, b"data": planar_images(6, 0)}
    (folder / "train").write_bytes(py2_pickle(batch))
    _, y, info = load_batch(f"cifar100:{tmp_path}", 6, seed=0, num_classes=100, normalisation="cifar100")
    assert info["labels_wrapped"] is False and info["normalisation"] == "cifar100"
    assert y.tolist() == [fine[i] for i in info["indices"]]
    _, y10, info10 = load_batch(f"cifar100:{tmp_path}", 6, seed=0, num_classes=10)
    assert info10["labels_wrapped"] is True
    assert y10.tolist() == [fine[i] % 10 for i in info10["indices"]]


def test_hostile_pickle_refused(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    target = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.mkdir, (str(target),))

    (folder / "data_batch_1").write_bytes(pickle.dumps({b"data": Evil(), b"labels": [0]}, protocol=2))
    with pytest.raises(DataError, match="data_batch_1: refusing to unpickle .*mkdir"):
        load_batch(f"cifar10:{tmp_path}", 1, seed=0)
    assert not target.exists()


def test_cifar_pickle_written_by_python3(tmp_path):
    """Protocol-2 pickles from Python 3 spell bytes as _codecs.encode; still only data."""
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    batch = {b"labels": [1, 2, 3], b"data": planar_images(3, 0)}
    (folder / "data_batch_1").write_bytes(pickle.dumps(batch, protocol=2))
    x, y, _ = load_batch(f"cifar10:{tmp_path}", 3, seed=0)
    assert x.shape == (3, 3, 32, 32) and sorted(y.tolist()) == [1, 2, 3]


def test_cifar_dir_errors(tmp_path, fake_cifar10):
    with pytest.raises(DataError, match=r"cifar10: no cifar-10-batches-py/data_batch_1 under"):
        load_batch(f"cifar10:{tmp_path / 'missing'}", 4, seed=0)
    with pytest.raises(DataError, match="batch_size 21 exceeds the 20 images"):
        load_batch(f"cifar10:{fake_cifar10}", 21, seed=0)
    bad = tmp_path / "bad" / "cifar-10-batches-py"
    bad.mkdir(parents=True)
    (bad / "data_batch_1").write_bytes(py2_pickle({b"labels": [0], b"data": np.zeros((1, 100), np.uint8)}))
    with pytest.raises(DataError, match=r"b'data' must be uint8 N×3072"):
        load_batch(f"cifar10:{tmp_path / 'bad'}", 1, seed=0)
    (bad / "data_batch_1").write_bytes(b"\x80\x02}(garbage")
    with pytest.raises(DataError, match="corrupt CIFAR pickle"):
        load_batch(f"cifar10:{tmp_path / 'bad'}", 1, seed=0)


# --------------------------------------------------------------------------- npz


def test_tiny_npz_default_and_key(tiny_npz):
    x, y, info = load_batch(f"npz:{tiny_npz}", 5, seed=0, normalisation="none", resolution=8)
    assert info["x_key"] == "x_train" and info["y_key"] == "y_train" and info["pool_size"] == 12
    raw = np.load(tiny_npz)["x_train"][info["indices"]]
    np.testing.assert_allclose(x.numpy(), raw.transpose(0, 3, 1, 2) / 255.0, rtol=0, atol=1e-6)
    assert y.tolist() == [i % 10 for i in info["indices"]]
    # explicit key; labels 100..104 wrap on a 10-class net
    _, y_t, info_t = load_batch(f"npz:{tiny_npz}:x_test", 5, seed=0, num_classes=10, resolution=8)
    assert info_t["x_key"] == "x_test" and info_t["labels_wrapped"] is True
    assert sorted(y_t.tolist()) == [0, 1, 2, 3, 4]
    json.dumps(info_t)


def test_npz_area_resize(tiny_npz):
    x, _, info = load_batch(f"npz:{tiny_npz}", 3, seed=5, normalisation="none", resolution=4)
    assert x.shape == (3, 3, 4, 4) and info["source_size"] == [8, 8]
    raw = np.load(tiny_npz)["x_train"][info["indices"]].astype(np.float64) / 255.0
    blocks = raw.reshape(3, 4, 2, 4, 2, 3).mean(axis=(2, 4)).transpose(0, 3, 1, 2)  # 2×2 averages
    np.testing.assert_allclose(x.numpy(), blocks, atol=1e-6)


def test_npz_errors(tmp_path, tiny_npz):
    with pytest.raises(DataError, match="npz file .*nope.npz not found"):
        load_batch(f"npz:{tmp_path / 'nope.npz'}", 1, seed=0)
    no_images = tmp_path / "labels_only.npz"
    np.savez(no_images, labels=np.arange(3))
    with pytest.raises(DataError, match=r"no image array \(x_train or \*_x\); arrays: labels"):
        load_batch(f"npz:{no_images}", 1, seed=0)
    with pytest.raises(DataError, match="no array 'x_val'; arrays: names, x_train"):
        load_batch(f"npz:{tiny_npz}:x_val", 1, seed=0)
    floats = tmp_path / "floats.npz"
    np.savez(floats, x_train=np.zeros((4, 8, 8, 3), np.float32), y_train=np.zeros(4, np.int64))
    with pytest.raises(DataError, match=r"x_train: images must be uint8 N×H×W×3, got float32 \(4, 8, 8, 3\)"):
        load_batch(f"npz:{floats}", 1, seed=0)
    nchw = tmp_path / "nchw.npz"
    np.savez(nchw, x_train=np.zeros((4, 3, 8, 8), np.uint8), y_train=np.zeros(4, np.int64))
    with pytest.raises(DataError, match=r"images must be uint8 N×H×W×3, got uint8 \(4, 3, 8, 8\)"):
        load_batch(f"npz:{nchw}", 1, seed=0)
    unlabeled = tmp_path / "unlabeled.npz"
    np.savez(unlabeled, cifar10_x=np.zeros((4, 8, 8, 3), np.uint8))
    with pytest.raises(DataError, match="no label array for 'cifar10_x' \\(expected 'cifar10_y'\\)"):
        load_batch(f"npz:{unlabeled}", 1, seed=0)
    with pytest.raises(DataError, match="batch_size 13 exceeds the 12 images"):
        load_batch(f"npz:{tiny_npz}", 13, seed=0)
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(DataError, match="not a readable .npz"):
        load_batch(f"npz:{corrupt}", 1, seed=0)
    single = tmp_path / "single.npz"
    with open(single, "wb") as f:
        np.save(f, np.zeros((2, 8, 8, 3), np.uint8))
    with pytest.raises(DataError, match="not an .npz archive"):
        load_batch(f"npz:{single}", 1, seed=0)
    with pytest.raises(DataError, match="unknown normalisation 'imagenet'"):
        load_batch(f"npz:{tiny_npz}", 1, seed=0, normalisation="imagenet")


@pytest.mark.skipif(not JPEG_NPZ.exists(), reason="shared image npz absent")
def test_shared_jpeg_npz():
    x, y, info = load_batch(f"npz:{JPEG_NPZ}", 64, seed=0)
    assert x.shape == (64, 3, 32, 32) and info["x_key"] == "x_train" and info["pool_size"] == 1000
    # CIFAR-10 normalised images have roughly zero mean and unit spread
    assert abs(float(x.mean())) < 0.3 and 0.7 < float(x.std()) < 1.3
    assert int(y.min()) >= 0 and int(y.max()) <= 9
    x16, _, info16 = load_batch(f"npz:{JPEG_NPZ}", 8, seed=0, resolution=16, num_classes=120,
                                normalisation="ImageNet16-120")
    assert x16.shape == (8, 3, 16, 16) and info16["normalisation"] == "imagenet16_120"
    _, _, again = load_batch(f"npz:{JPEG_NPZ}", 8, seed=0, resolution=16, normalisation="imagenet16")
    assert again["indices"] == info16["indices"] and again["sha256"] == info["sha256"]
    json.dumps(info)


@pytest.mark.skipif(not FOOLBOX_NPZ.exists(), reason="shared image npz absent")
def test_shared_foolbox_npz_labels():
    known = [3, 8, 8, 0, 6, 6, 1, 6, 3, 1, 0, 9, 5, 7, 9, 8, 5, 7, 8, 6]  # CIFAR-10 test order
    _, y, info = load_batch(f"npz:{FOOLBOX_NPZ}", 20, seed=0)
    assert info["x_key"] == "cifar10_x" and info["y_key"] == "cifar10_y"
    assert sorted(info["indices"]) == list(range(20))
    assert y.tolist() == [known[i] for i in info["indices"]]
    _, y100, info100 = load_batch(f"npz:{FOOLBOX_NPZ}:cifar100_x", 20, seed=0, num_classes=100)
    assert info100["y_key"] == "cifar100_y" and info100["labels_wrapped"] is False
    _, _, wrapped = load_batch(f"npz:{FOOLBOX_NPZ}:cifar100_x", 20, seed=0, num_classes=10)
    assert wrapped["labels_wrapped"] is True


# --------------------------------------------------------------------------- normalisation


def test_normalisation_constants_match_nb201():
    # NB201 (AutoDL-Projects get_dataset_with_transform): mean/std on the 0..255 scale, divided by 255.
    expected = {
        "cifar10": ([125.3, 123.0, 113.9], [63.0, 62.1, 66.7]),
        "cifar100": ([129.3, 124.1, 112.4], [68.2, 65.4, 70.4]),
        "imagenet16_120": ([122.68, 116.66, 104.01], [63.22, 61.26, 65.09]),
    }
    for name, (mean, std) in expected.items():
        np.testing.assert_allclose(NORMALISATIONS[name][0], np.array(mean) / 255, rtol=1e-12)
        np.testing.assert_allclose(NORMALISATIONS[name][1], np.array(std) / 255, rtol=1e-12)
    assert NORMALISATIONS["none"] is None


def test_normalisation_applied(tmp_path):
    # Pixel 0 and 255 per channel -> (0 - mean)/std and (1 - mean)/std.
    images = np.zeros((2, 4, 4, 3), np.uint8)
    images[1] = 255
    path = tmp_path / "bw.npz"
    np.savez(path, x_train=images, y_train=np.array([0, 1]))
    x, y, info = load_batch(f"npz:{path}", 2, seed=0, resolution=4, normalisation="cifar10")
    mean, std = (torch.tensor(v) for v in NORMALISATIONS["cifar10"])
    for k, idx in enumerate(info["indices"]):
        expect = ((idx * 1.0) - mean) / std
        torch.testing.assert_close(x[k, :, 0, 0], expect.float())
    assert info["mean"] == NORMALISATIONS["cifar10"][0]
