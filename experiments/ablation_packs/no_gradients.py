"""Ablation vocabulary: the default pack without gradients (W, A, Z only)."""
from primitives.default import PACK as DEFAULT

PACK = DEFAULT.restricted("no_gradients", stats=("W", "A", "Z"))
