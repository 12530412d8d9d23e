"""Ablation vocabulary: the default pack with activation statistics only (A, Z, dZ)."""
from gpproxy.formula import restrict
from primitives.default import PACK as DEFAULT

PACK = restrict(DEFAULT, "activations_only", stats=("A", "Z", "dZ"))
