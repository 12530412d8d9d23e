"""Ablation vocabulary: the default pack with weights and weight gradients only."""
from primitives.default import PACK as DEFAULT

PACK = DEFAULT.restricted("weights_grads", stats=("W", "dW"))
