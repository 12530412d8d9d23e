"""Ablation vocabulary: the default pack with activation statistics only (A, Z, dZ)."""
from primitives.default import PACK as DEFAULT

PACK = DEFAULT.restricted("activations_only", stats=("A", "Z", "dZ"))
