"""The per-layer record: the one shape a probed layer has from probe to cache to statset.

``gpproxy.probe.probe`` makes one ``LayerRecord`` per Conv2d/Linear layer (torch
tensors), ``gpproxy.cache`` writes it to ``stats/<key>.npy`` + ``.json`` and
reads it back (numpy views of the file), and ``gpproxy.statset`` stacks records
of many archs for formula evaluation. Either kind of array works everywhere.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class LayerRecord:
    """One probed layer.

    ``meta``     exact layer numbers (``probe.layer_meta`` plus ``out_numel``);
                 formulas may use some as per-layer terminals.
    ``stats``    {statistic: (sample, scale)}: a (rows, cols) sample (torch
                 tensor or numpy array) and numel(full) / numel(sample).
    ``moments``  {statistic or "X*Y": values}: exact moments of the full tensor
                 (float64 [sum, sum |x|, sum x², numel], activations add
                 [logdet, hamming]); empty when not recorded.
    """

    name: str
    meta: dict
    stats: dict
    moments: dict = field(default_factory=dict)


def as_array(sample) -> np.ndarray:
    """A sample as a numpy array (a torch tensor is copied to the host)."""
    if isinstance(sample, np.ndarray):
        return sample
    return sample.detach().cpu().numpy()


def as_floats(values) -> list:
    """Moment values as a list of Python floats (float64, as cache.json stores
    them); a list read from a cache is already one."""
    if isinstance(values, list):
        return values
    return [float(v) for v in values.tolist()]
