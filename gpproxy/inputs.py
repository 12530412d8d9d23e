"""The one minibatch that every zero-cost proxy sees.

Sources (``parse_input_spec`` text):

``noise``          standard Gaussian images, uniform random labels.
``cifar10:DIR``    the CIFAR-10 python pickles (``cifar-10-batches-py``; DIR may be
                   that folder or its parent); images come from the training batches.
``cifar100:DIR``   likewise ``cifar-100-python/train`` with fine labels.
``npz:FILE[:KEY]`` a NumPy ``.npz`` with uint8 N×H×W×3 images and integer labels.

``load_batch`` picks images with a seeded generator and records in ``info``
everything needed to rebuild the same batch (file hash, indices, settings).
"""
from __future__ import annotations

import hashlib
import pickle
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .errors import DataError

KINDS = ("noise", "cifar10", "cifar100", "npz")
MIN_IMAGE_SIDE = 4

# Per-channel mean/std on the 0..1 scale, as NB201 normalises its datasets
# (AutoDL-Projects lib/datasets/get_dataset_with_transform.py).
NORMALISATIONS = {
    "cifar10": ([125.3 / 255, 123.0 / 255, 113.9 / 255], [63.0 / 255, 62.1 / 255, 66.7 / 255]),
    "cifar100": ([129.3 / 255, 124.1 / 255, 112.4 / 255], [68.2 / 255, 65.4 / 255, 70.4 / 255]),
    "imagenet16_120": ([122.68 / 255, 116.66 / 255, 104.01 / 255], [63.22 / 255, 61.26 / 255, 65.09 / 255]),
    "none": None,
}
_NORMALISATION_ALIASES = {"imagenet16": "imagenet16_120", "imagenet16-120": "imagenet16_120"}

_CIFAR_LAYOUT = {
    # kind: (folder name, training files, label key)
    "cifar10": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], b"labels"),
    "cifar100": ("cifar-100-python", ["train"], b"fine_labels"),
}


# --------------------------------------------------------------------------- #
# The spec
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class InputSpec:
    """Where the minibatch comes from.  ``key`` picks the image array of an npz."""

    kind: str
    path: str | None = None
    key: str | None = None

    def describe(self) -> str:
        """Canonical text; ``parse_input_spec(spec.describe()) == spec``."""
        if self.kind == "noise":
            return "noise"
        text = f"{self.kind}:{self.path}"
        return f"{text}:{self.key}" if self.key else text


def parse_input_spec(text) -> InputSpec:
    """Parse ``noise``, ``cifar10:DIR``, ``cifar100:DIR`` or ``npz:FILE[:KEY]``."""
    if isinstance(text, InputSpec):
        return text
    text = str(text).strip()
    kind, sep, rest = text.partition(":")
    kind = kind.strip().lower()
    if kind not in KINDS:
        raise DataError(f"unknown input {text!r}; use one of: noise, cifar10:DIR, cifar100:DIR, npz:FILE[:KEY]")
    if kind == "noise":
        if rest:
            raise DataError(f"input {text!r}: 'noise' takes no path")
        return InputSpec("noise")
    if not rest:
        raise DataError(f"input {text!r}: {kind} needs a path, e.g. {kind}:{'FILE' if kind == 'npz' else 'DIR'}")
    if kind == "npz":
        path, key = _split_npz_key(rest)
        return InputSpec("npz", path, key)
    return InputSpec(kind, rest)


def _split_npz_key(rest: str) -> tuple[str, str | None]:
    """``FILE:KEY`` -> (FILE, KEY) when the tail looks like an array name, not part of a path."""
    head, sep, tail = rest.rpartition(":")
    if sep and head and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", tail) and not tail.lower().endswith("npz"):
        return head, tail
    return rest, None


# --------------------------------------------------------------------------- #
# The batch
# --------------------------------------------------------------------------- #


def load_batch(spec, batch_size: int, seed: int, num_classes: int = 10, resolution: int = 32,
               normalisation: str = "cifar10"):
    """One reproducible minibatch ``(x, y, info)``.

    ``x`` is float32 N×3×R×R, ``y`` int64 in ``[0, num_classes)``.  Images are
    scaled to [0, 1], area-resized to ``resolution`` when their size differs
    (ImageNet16-120 nets take 16×16), then normalised with the NB201 mean/std of
    ``normalisation``.  Noise is N(0, 1) already and is not normalised.
    """
    spec = parse_input_spec(spec)
    batch_size, resolution, num_classes = int(batch_size), int(resolution), int(num_classes)
    if batch_size < 1 or resolution < 1 or num_classes < 1:
        raise DataError(
            f"batch_size, resolution and num_classes must be >= 1 (got {batch_size}, {resolution}, {num_classes})"
        )
    if spec.kind == "noise":
        x, y, info = _noise_batch(batch_size, seed, num_classes, resolution)
    else:
        images, labels, info = _load_pool(spec)
        x, y, info = _image_batch(images, labels, info, batch_size, seed, resolution, normalisation)
    y, info["labels_wrapped"] = _wrap_labels(y, num_classes)
    info.update(spec=spec.describe(), seed=int(seed), batch_size=batch_size, resolution=resolution,
                num_classes=num_classes)
    return x, y, info


def _noise_batch(batch_size, seed, num_classes, resolution):
    g = torch.Generator().manual_seed(int(seed))
    x = torch.randn(batch_size, 3, resolution, resolution, generator=g)
    y = torch.randint(0, num_classes, (batch_size,), generator=g, dtype=torch.int64)
    info = {"kind": "noise", "path": None, "sha256": None, "indices": None,
            "normalisation": "none", "mean": None, "std": None,
            "generator": "torch.Generator().manual_seed(seed); randn(B,3,R,R) then randint(0,num_classes,(B,))"}
    return x, y, info


def _image_batch(images, labels, info, batch_size, seed, resolution, normalisation):
    n = len(images)
    if batch_size > n:
        raise DataError(f"{info['path']}: batch_size {batch_size} exceeds the {n} images available")
    norm = _normalisation(normalisation)
    rng = np.random.default_rng(int(seed))
    indices = rng.choice(n, size=batch_size, replace=False)
    x = torch.from_numpy(np.ascontiguousarray(images[indices])).permute(0, 3, 1, 2).float().div_(255.0)
    if x.shape[-2:] != (resolution, resolution):
        # Area averaging is the faithful downsample (32 -> 16); it commutes with
        # the per-channel affine normalisation, so the order does not matter.
        x = F.interpolate(x, size=(resolution, resolution), mode="area")
    mean, std = NORMALISATIONS[norm] or (None, None)
    if mean is not None:
        x = (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    y = torch.from_numpy(labels[indices].astype(np.int64))
    info.update(indices=[int(i) for i in indices], normalisation=norm, mean=mean, std=std,
                source_size=list(images.shape[1:3]), selection="numpy.random.default_rng(seed).choice(n, B, replace=False)")
    return x.contiguous().float(), y, info


def _normalisation(name: str) -> str:
    key = str(name).strip().lower()
    key = _NORMALISATION_ALIASES.get(key, key).replace("-", "_")
    if key not in NORMALISATIONS:
        raise DataError(f"unknown normalisation {name!r}; choose one of: {', '.join(NORMALISATIONS)}")
    return key


def _wrap_labels(y: torch.Tensor, num_classes: int):
    """Fold labels into ``[0, num_classes)`` (CIFAR-100 labels on a 10-class net)."""
    if len(y) and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        return torch.remainder(y, num_classes), True
    return y, False


# --------------------------------------------------------------------------- #
# Image pools: (uint8 N×H×W×3, int labels N, info)
# --------------------------------------------------------------------------- #


def _load_pool(spec: InputSpec):
    if spec.kind == "npz":
        return _load_npz(Path(spec.path).expanduser(), spec.key)
    return _load_cifar_dir(spec.kind, Path(spec.path).expanduser())


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _check_images(where: str, images, labels) -> None:
    if not (isinstance(images, np.ndarray) and images.dtype == np.uint8 and images.ndim == 4
            and images.shape[-1] == 3 and images.shape[1] > 0 and images.shape[2] > 0):
        got = f"{images.dtype} {images.shape}" if isinstance(images, np.ndarray) else type(images).__name__
        raise DataError(f"{where}: images must be uint8 N×H×W×3, got {got}")
    if not (isinstance(labels, np.ndarray) and labels.ndim == 1 and labels.dtype.kind in "iu"):
        got = f"{labels.dtype} {labels.shape}" if isinstance(labels, np.ndarray) else type(labels).__name__
        raise DataError(f"{where}: labels must be a 1-D integer array, got {got}")
    if len(labels) != len(images):
        raise DataError(f"{where}: {len(images)} images but {len(labels)} labels")
    if len(labels) and labels.dtype.kind == "i" and int(labels.min()) < 0:
        raise DataError(f"{where}: labels must be class indices >= 0, found {int(labels.min())}")
    if min(images.shape[1:3]) < MIN_IMAGE_SIDE:
        raise DataError(f"{where}: images are {images.shape[1]}x{images.shape[2]} pixels; at least "
                        f"{MIN_IMAGE_SIDE}x{MIN_IMAGE_SIDE} are needed (smaller ones would only be upsampled noise)")


def _load_npz(path: Path, key: str | None):
    if not path.is_file():
        raise DataError(f"npz file {path} not found")
    try:
        # Open the file ourselves: np.load(path) leaks its handle when the zip is corrupt.
        with open(path, "rb") as fh:
            npz = np.load(fh, allow_pickle=False)
            if not hasattr(npz, "files"):  # a plain .npy gives one array, not an archive
                raise DataError(f"{path}: a single .npy array, not an .npz archive of named arrays")
            names = list(npz.files)
            x_key = key or _default_image_key(names)
            if x_key is None:
                raise DataError(f"{path}: no image array (x_train or *_x); arrays: {', '.join(names) or '(none)'}")
            if x_key not in names:
                raise DataError(f"{path}: no array {x_key!r}; arrays: {', '.join(names)}")
            y_key = _label_key(x_key, names)
            if y_key is None:
                raise DataError(f"{path}: no label array for {x_key!r} (expected {_label_names(x_key)[0]!r}); "
                                f"arrays: {', '.join(names)}")
            images, labels = npz[x_key], npz[y_key]
    except DataError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise DataError(f"{path}: not a readable .npz ({type(e).__name__}: {e})") from None
    _check_images(f"{path}:{x_key}", images, labels)
    info = {"kind": "npz", "path": str(path.resolve()), "files": [path.name], "sha256": _sha256(path),
            "x_key": x_key, "y_key": y_key, "pool_size": len(images)}
    return images, labels, info


def _default_image_key(names: list[str]) -> str | None:
    if "x_train" in names:
        return "x_train"
    for name in names:
        if name == "x" or name.startswith("x_") or name.endswith("_x"):
            return name
    return None


def _label_names(x_key: str) -> list[str]:
    """Label array names that pair with an image array name (x_train -> y_train, cifar10_x -> cifar10_y)."""
    out = []
    if x_key == "x":
        out.append("y")
    if x_key.startswith("x_"):
        out.append("y_" + x_key[2:])
    if x_key.endswith("_x"):
        out.append(x_key[:-2] + "_y")
    out.append(x_key + "_labels")
    return out


def _label_key(x_key: str, names: list[str]) -> str | None:
    for name in _label_names(x_key):
        if name in names:
            return name
    return None


def _cifar_folder(kind: str, path: Path) -> Path:
    folder_name, files, _ = _CIFAR_LAYOUT[kind]
    for folder in (path, path / folder_name):
        if (folder / files[0]).is_file():
            return folder
    raise DataError(f"{kind}: no {folder_name}/{files[0]} under {path} (expected the CIFAR python version)")


def _load_cifar_dir(kind: str, path: Path):
    folder = _cifar_folder(kind, path)
    _, names, label_key = _CIFAR_LAYOUT[kind]
    files = [folder / n for n in names if (folder / n).is_file()]
    images, labels = [], []
    for f in files:
        x, y = _read_cifar_pickle(f, label_key)
        images.append(x)
        labels.append(y)
    images, labels = np.concatenate(images), np.concatenate(labels)
    info = {"kind": kind, "path": str(folder.resolve()), "files": [f.name for f in files],
            "sha256": _sha256(files[0]), "sha256_of": files[0].name, "pool_size": len(images)}
    return images, labels, info


def _read_cifar_pickle(path: Path, label_key: bytes):
    """One CIFAR python batch as (uint8 N×32×32×3, int64 labels)."""
    try:
        with open(path, "rb") as f:
            batch = _NumpyOnlyUnpickler(f, path).load()
    except DataError:
        raise
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from None
    except Exception as e:  # UnpicklingError, EOFError, ValueError...: damaged file
        raise DataError(f"{path}: corrupt CIFAR pickle ({type(e).__name__}: {e})") from None
    if not isinstance(batch, dict) or b"data" not in batch or label_key not in batch:
        keys = sorted(k.decode("latin-1") if isinstance(k, bytes) else str(k) for k in batch) \
            if isinstance(batch, dict) else type(batch).__name__
        raise DataError(f"{path}: expected keys b'data' and {label_key!r}; found {keys}")
    data = batch[b"data"]
    if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2 and data.shape[1] == 3072):
        got = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DataError(f"{path}: b'data' must be uint8 N×3072, got {got}")
    try:
        labels = np.asarray(batch[label_key], dtype=np.int64).reshape(-1)
    except (TypeError, ValueError):
        raise DataError(f"{path}: {label_key!r} is not a list of integers") from None
    # Rows are the R, G, B planes of a 32×32 image, each row-major.
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    _check_images(str(path), images, labels)
    return images, labels


def _latin1_encode(text, encoding="latin1"):
    """Stand-in for ``_codecs.encode`` that only does what pickles of bytes need."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise DataError(f"refusing _codecs.encode with encoding {encoding!r} in a pickle")
    return text.encode("latin1")


def _numpy_reconstructors() -> dict:
    """The numpy callables an ndarray pickle needs, under numpy 1.x and 2.x module names."""
    try:
        from numpy._core import multiarray, numeric
    except ImportError:  # numpy < 2
        from numpy.core import multiarray, numeric
    allowed = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype,
               # Python 3 writes bytes in protocol <= 2 as _codecs.encode(str, 'latin1').
               ("_codecs", "encode"): _latin1_encode}
    for mod in ("numpy.core", "numpy._core"):
        allowed[(f"{mod}.multiarray", "_reconstruct")] = multiarray._reconstruct
        # Protocol-5 pickles of arrays use _frombuffer; it only wraps bytes.
        allowed[(f"{mod}.numeric", "_frombuffer")] = numeric._frombuffer
    return allowed


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles CIFAR batches: dicts/lists/bytes plus numpy arrays, nothing callable else.

    A pickle reaches code only through ``find_class`` (and persistent ids), so
    whitelisting the array reconstructors stops a hostile file from running code.
    """

    _ALLOWED = None

    def __init__(self, file, path):
        super().__init__(file, encoding="bytes")  # CIFAR pickles were written by Python 2
        self._path = path
        if _NumpyOnlyUnpickler._ALLOWED is None:
            _NumpyOnlyUnpickler._ALLOWED = _numpy_reconstructors()

    def find_class(self, module, name):
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise DataError(f"{self._path}: refusing to unpickle {module}.{name}; only numpy arrays are allowed") from None

    def persistent_load(self, pid):
        raise DataError(f"{self._path}: refusing a persistent reference in the pickle")
