"""Ablation vocabulary: the default pack without the sample-kernel reductions
(logdet, hamming: NASWOT's idea)."""
from gpproxy.formula import restrict
from primitives.default import PACK as DEFAULT

PACK = restrict(DEFAULT, "no_kernels", drop=("logdet", "hamming"))
