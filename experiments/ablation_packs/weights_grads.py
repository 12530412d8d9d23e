"""Ablation vocabulary: the default pack with weights and weight gradients only."""
from gpproxy.formula import restrict
from primitives.default import PACK as DEFAULT

PACK = restrict(DEFAULT, "weights_grads", stats=("W", "dW"))
