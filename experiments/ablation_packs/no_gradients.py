"""Ablation vocabulary: the default pack without gradients (W, A, Z only)."""
from gpproxy.formula import restrict
from primitives.default import PACK as DEFAULT

PACK = restrict(DEFAULT, "no_gradients", stats=("W", "A", "Z"))
