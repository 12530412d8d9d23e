"""The NAS-Bench-201 space behind the protocol: encodings and network in
:mod:`gpproxy.spaces.nb201`; here its datasets and its benchmark-file loaders.

Loaders (besides the generic CSV with ``arch_str`` or ``naslib_ops``):

``"analog-nasbench"``
    The embedded default: the data file shipped in the PyPI wheel
    ``analog-nasbench==0.1.3`` (15,625 CIFAR-10 retrainings of the NB201 space).
    We read the file with a restricted unpickler and never import the package,
    whose ``__init__`` pulls in pandas and the deprecated ``pkg_resources``.
a NATS-Bench topology archive (directory or ``.pickle.pbz2``) or an NB201 ``.pth``
    Read through the optional ``nats_bench`` (or ``nas_201_api``) package.
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
import math
import pickle
from pathlib import Path

import numpy as np

from ..errors import ArchError, DataError
from . import nb201
from .base import Dataset, Space
from .table import Benchmark, check_unique

ANALOG_SPEC = "analog-nasbench"
ANALOG_DIST = "analog-nasbench"
ANALOG_VERSION = "0.1.3"
ANALOG_INSTALL_HINT = f"pip install {ANALOG_DIST}=={ANALOG_VERSION} --no-deps (or `make run`, which installs it)"

ANALOG_ACCURACY_ATTRS = ("baseline_accuracy", "ptq_accuracy", "qat_accuracy", "noisy_accuracy", "analog_accuracy")
ANALOG_DRIFT_ATTRS = tuple(
    f"{kind}_drift_{seconds}" for kind in ("baseline", "analog") for seconds in (60, 3600, 86400, 2592000)
)

# (target name, NATS dataset, get_more_info key).  Key meanings per NATS-Bench's
# api_topology.get_more_info: for 'cifar10-valid' valid = x-valid and
# test = ori-test; for 'cifar10' test = ori-test (no valid split); for
# 'cifar100' / 'ImageNet16-120' valid = x-valid and test = x-test.
NATS_TARGETS = (
    ("cifar10valid_valid", "cifar10-valid", "valid-accuracy"),
    ("cifar10valid_test", "cifar10-valid", "test-accuracy"),
    ("cifar10_test", "cifar10", "test-accuracy"),
    ("cifar100_valid", "cifar100", "valid-accuracy"),
    ("cifar100_test", "cifar100", "test-accuracy"),
    ("imagenet16_120_valid", "ImageNet16-120", "valid-accuracy"),
    ("imagenet16_120_test", "ImageNet16-120", "test-accuracy"),
)

DATASETS = {
    "cifar10": Dataset("cifar10", "cifar10", "cifar10valid_valid", 10, 32,
                       "CIFAR-10 (cifar10-valid x-valid, 200 ep, seed mean)", normalisation="cifar10"),
    "cifar100": Dataset("cifar100", "cifar100", "cifar100_test", 100, 32,
                        "CIFAR-100 (x-test, 200 ep, seed mean)", normalisation="cifar100"),
    "imagenet16_120": Dataset("imagenet16_120", "ImageNet16-120", "imagenet16_120_test", 120, 16,
                              "ImageNet16-120 (x-test, 200 ep, seed mean)", normalisation="imagenet16"),
}


class NB201Space(Space):
    name = "nb201"
    arch_columns = ("arch_str", "naslib_ops")
    channels_last_cpu = True
    default_benchmark = ANALOG_SPEC

    def canonical(self, arch) -> str:
        return nb201.format_arch(nb201.parse_arch(arch))

    def key(self, canonical: str) -> str:
        return str(nb201.arch_to_index(nb201.parse_arch(canonical)))

    def build(self, canonical: str, num_classes: int):
        return nb201.init_weights(nb201.build_network(nb201.parse_arch(canonical), num_classes=num_classes))

    def archs(self) -> list[str]:
        return [nb201.format_arch(a) for a in nb201.all_archs()]

    def datasets(self) -> dict:
        return DATASETS

    def describe_header(self, canonical: str) -> dict:
        ops = nb201.parse_arch(canonical)
        return {"arch_str": canonical, "index": nb201.arch_to_index(ops), "naslib": nb201.to_naslib(ops),
                "space": self.name}

    def describe(self, arch, num_classes: int) -> dict:
        # Always at 32x32, the resolution of NB201's published params/FLOPs
        # (nb201.describe: verified on NAS-Bench-Suite-Zero's rows).
        from ._common import describe_network

        text = self.canonical(arch)
        return describe_network(self.build(text, num_classes), (1, 3, 32, 32), **self.describe_header(text))

    def suite_key(self, arch: str) -> str:
        """NAS-Bench-Suite-Zero's arch key: the NASLib 6-tuple text."""
        return str(nb201.to_naslib(nb201.parse_arch(arch)))


# --------------------------------------------------------------------------- #
# analog-nasbench (embedded default)
# --------------------------------------------------------------------------- #


class _AnbRecord:
    """Stand-in for analognasbench's plain classes: holds pickled attribute state only."""

    def __setstate__(self, state):
        if not isinstance(state, dict):
            raise DataError(f"analog-nasbench data file: unexpected object state of type {type(state).__name__}")
        self.__dict__.update(state)


class _AnbArchitecture(_AnbRecord):
    """Stand-in for ``analognasbench.data.Architecture``."""


class _AnbDriftMeasurement(_AnbRecord):
    """Stand-in for ``analognasbench.data.DriftMeasurement`` (value ± uncertainty)."""


class _AnalogUnpickler(pickle.Unpickler):
    """Resolves only the two data classes of analog-nasbench; refuses everything else.

    ``find_class`` is the unpickler's only way to reach code (GLOBAL,
    STACK_GLOBAL, INST, OBJ and EXT* all go through it), so a hostile file
    cannot run anything.  The real file needs no builtins: its dict, tuples,
    ints and floats are pickle opcodes of their own.
    """

    ALLOWED = {
        ("analognasbench.data", "Architecture"): _AnbArchitecture,
        ("analognasbench.data", "DriftMeasurement"): _AnbDriftMeasurement,
    }

    def __init__(self, file, path):
        super().__init__(file)
        self._path = path

    def find_class(self, module, name):
        try:
            return self.ALLOWED[(module, name)]
        except KeyError:
            raise DataError(
                f"{self._path}: refusing to unpickle {module}.{name}; only "
                "analognasbench.data.Architecture and DriftMeasurement are allowed"
            ) from None

    def persistent_load(self, pid):
        raise DataError(f"{self._path}: refusing a persistent reference in the pickle")


def analog_data_path() -> Path:
    """Path of ``analognasbench/data.anb`` in the installed wheel, without importing it."""
    try:
        files = importlib.metadata.files(ANALOG_DIST) or []
    except importlib.metadata.PackageNotFoundError:
        files = []
    for f in files:
        # The wheel also installs a copy outside site-packages ("../../../analog-nasbench/");
        # the one inside the package directory is the one its own code reads.
        if tuple(f.parts[-2:]) == ("analognasbench", "data.anb"):
            path = Path(f.locate())
            if path.is_file():
                return path
    spec = importlib.util.find_spec("analognasbench")  # finds, does not import, a top-level package
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            path = Path(location) / "data.anb"
            if path.is_file():
                return path
    raise DataError(f"analog-nasbench is not installed (needed for the default ground truth); run: {ANALOG_INSTALL_HINT}")


def _analog_version() -> str:
    try:
        return importlib.metadata.version(ANALOG_DIST)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def read_analog_pickle(path) -> dict:
    """The data file as ``{naslib 6-tuple: _AnbArchitecture}``, loaded safely."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            data = _AnalogUnpickler(f, path).load()
    except DataError:
        raise
    except OSError as e:
        raise DataError(f"{path}: cannot read analog-nasbench data ({e.strerror or e})") from None
    except Exception as e:  # UnpicklingError, EOFError, ValueError... : a damaged file
        raise DataError(f"{path}: corrupt analog-nasbench data file ({type(e).__name__}: {e})") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a dict of architectures, got {type(data).__name__}")
    return data


def load_analog_nasbench(path=None) -> Benchmark:
    """The embedded default benchmark, rows ordered by NB201 index."""
    path = Path(path) if path is not None else analog_data_path()
    data = read_analog_pickle(path)
    targets = ANALOG_ACCURACY_ATTRS + ANALOG_DRIFT_ATTRS
    rows = []
    for key, record in data.items():
        ops = _analog_ops(path, key)
        values = [_analog_value(path, key, record, attr) for attr in targets]
        rows.append((nb201.arch_to_index(ops), nb201.format_arch(ops), values))
    rows.sort(key=lambda r: r[0])
    indices = [r[0] for r in rows]
    if len(set(indices)) != len(indices):
        raise DataError(f"{path}: two entries map to the same NB201 architecture")
    table = np.array([r[2] for r in rows], dtype=np.float64).reshape(len(rows), len(targets))
    columns = {t: table[:, j].copy() for j, t in enumerate(targets)}
    source = (
        f"{ANALOG_DIST} {_analog_version()} ({path}; {len(rows)} archs; independent CIFAR-10 "
        "retraining of the NB201 space, NASLib tuple encoding)"
    )
    return Benchmark(name=ANALOG_SPEC, space="nb201", archs=[r[1] for r in rows], columns=columns, source=source,
                     canonical=NB201Space().canonical,
                     preferred_target="baseline_accuracy")


def _analog_ops(path: Path, key) -> tuple[str, ...]:
    if not (isinstance(key, tuple) and len(key) == 6 and all(type(v) is int for v in key)):
        raise DataError(f"{path}: unexpected key {key!r}; expected a NASLib 6-tuple of ints")
    try:
        return nb201.from_naslib(key)
    except ArchError as e:
        raise DataError(f"{path}: key {key!r} is not an NB201 cell ({e})") from None


def _analog_value(path: Path, key, record, attr: str) -> float:
    if not isinstance(record, _AnbArchitecture):
        raise DataError(f"{path}: entry {key!r} is a {type(record).__name__}, expected Architecture")
    try:
        value = getattr(record, attr)
    except AttributeError:
        raise DataError(f"{path}: entry {key!r} has no {attr!r}") from None
    if isinstance(value, _AnbDriftMeasurement):  # keep the value, drop the ± uncertainty
        value = getattr(value, "value", None)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DataError(f"{path}: entry {key!r} field {attr!r} is not a number ({value!r})")
    return float(value)


# --------------------------------------------------------------------------- #
# NATS-Bench / NB201 official APIs
# --------------------------------------------------------------------------- #


def _create_nats_api(path: Path):
    """Open the official API for ``path`` (NATS-Bench dir/.pbz2, or NB201 .pth)."""
    if path.name.lower().endswith(".pth"):
        try:
            from nas_201_api import NASBench201API  # optional
        except ImportError:
            raise DataError(
                f"{path}: reading an NB201 .pth needs the nas_201_api package (pip install nas-bench-201)"
            ) from None
        return NASBench201API(str(path), verbose=False)
    try:
        from nats_bench import create  # optional
    except ImportError:
        raise DataError(f"{path}: reading NATS-Bench files needs the nats_bench package (pip install nats_bench)") from None
    # fast_mode reads the per-arch files of an unpacked "-simple" directory lazily;
    # a single .pickle.pbz2 archive must be opened with fast_mode=False.
    return create(str(path), "tss", fast_mode=path.is_dir(), verbose=False)


def load_nats(path, api=None) -> Benchmark:
    """Seed-averaged 200-epoch accuracies for every arch of the topology space.

    ``api`` needs only ``__len__``, ``arch(i)`` and
    ``get_more_info(i, dataset, hp='200', is_random=False)``; it is created from
    ``path`` when not given (tests pass a small fake).  A (dataset, key) pair
    missing for an arch gives NaN; a target missing for every arch is dropped.
    """
    path = Path(path)
    if api is None:
        if not path.exists():
            raise DataError(f"{path}: NATS-Bench/NB201 benchmark path not found")
        try:
            api = _create_nats_api(path)
        except DataError:
            raise
        except Exception as e:  # the official loaders raise ValueError/AssertionError/OSError
            raise DataError(f"{path}: cannot open with the official API ({type(e).__name__}: {e})") from None
    n = len(api)
    archs = []
    columns = {t: np.full(n, math.nan) for t, _, _ in NATS_TARGETS}
    datasets = sorted({d for _, d, _ in NATS_TARGETS})
    for i in range(n):
        archs.append(_nats_arch(path, api, i))
        infos = {d: _nats_info(path, api, i, d) for d in datasets}
        for target, dataset, key in NATS_TARGETS:
            value = infos[dataset].get(key)
            if value is not None:
                columns[target][i] = float(value)
    columns = {t: v for t, v in columns.items() if not np.isnan(v).all()}
    if not columns:
        raise DataError(f"{path}: the API returned no 200-epoch accuracies for any dataset")
    check_unique(path, archs)
    source = f"NATS-Bench/NB201 API on {path} ({n} archs; hp=200, mean over seeds)"
    return Benchmark(name=str(path), space="nb201", archs=archs, columns=columns, source=source,
                     canonical=NB201Space().canonical)


def _nats_arch(path: Path, api, i: int) -> str:
    text = api.arch(i)
    text = text if isinstance(text, str) else getattr(text, "tostr", lambda: str(text))()
    try:
        return nb201.format_arch(nb201.parse_arch(text))
    except ArchError as e:
        raise DataError(f"{path}: arch {i} {text!r} is not an NB201 cell ({e})") from None


def _nats_info(path: Path, api, i: int, dataset: str) -> dict:
    try:
        info = api.get_more_info(i, dataset, hp="200", is_random=False)
    except (KeyError, ValueError):  # no record of this dataset for this arch
        return {}
    return info if isinstance(info, dict) else {}


