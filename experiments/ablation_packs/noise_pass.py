"""Ablation vocabulary: the default pack plus the statistics of a second pass
on Gaussian-noise input (EZNAS's trick): dW_n, A_n, Z_n, dZ_n. Needs a cache
built with ``noise_pass = true``."""
from dataclasses import replace

from gpproxy.pack import Input, Output, Weight
from primitives.default import PACK as DEFAULT

PACK = replace(DEFAULT, name="noise_pass", prims=dict(DEFAULT.prims), seeds=dict(DEFAULT.seeds),
               stats={**DEFAULT.stats, "dW_n": Weight, "A_n": Input, "Z_n": Output, "dZ_n": Output},
               doc=DEFAULT.doc + ", plus the same statistics of a noise-input pass")
