"""Ablation vocabulary: the default pack without the sample-kernel reductions
(logdet, hamming: NASWOT's idea)."""
from primitives.default import PACK as DEFAULT

PACK = DEFAULT.restricted("no_kernels", drop=("logdet", "hamming"))
