"""gpproxy: genetic programming that discovers zero-cost NAS proxies.

The Python API is exactly this:

``evolve(config, out=None, *, ground_truth=None, **overrides) -> Run``
    run (or resume) an evolution from a TOML path, a dict or a :class:`Config`;
``Run.open(path)``
    a run directory: ``.config``, ``.front``, ``.selected``, ``.log``,
    ``.summary``, ``.export(path, rank=None)``;
``score(proxy, archs=None, *, space=..., ground_truth=...)``
    score a baseline, formula or exported module on archs of any space;
``Config``
    the validated run configuration (``Config.override(**changes)``).
"""
from .api import evolve, score
from .config import Config
from .run import Run
from .version import __version__

__all__ = ["Config", "Run", "evolve", "score", "__version__"]
