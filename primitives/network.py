"""The network pack: the transfer pack plus whole-network terms (issue 12, part 4).

Everything of primitives/transfer.py, plus two Net terminals computed once per
network by ``gpproxy.probe.network_terms`` (one more forward+backward; a task
needs ``net_terms = true``, ``gpproxy cache --net-terms``):

* ``jacov``: the input-logit Jacobian score (NASWOT v1's Jacobian covariance);
* ``naswot``: the log-determinant of a network-level NASWOT kernel: the Hamming
  kernels of the inputs of every Conv2d/Linear layer summed before the
  determinant (the default pack's ``hamming`` takes one determinant per layer).

Formulas combine them with per-layer terms through the element-wise ops on Net
values, e.g. ``add(sum_layers(eff_rank(dW)), log(neg(jacov)))``.
"""
from dataclasses import replace

from primitives.transfer import PACK as TRANSFER

PACK = replace(TRANSFER, name="network", stats=dict(TRANSFER.stats), prims=dict(TRANSFER.prims),
               seeds=dict(TRANSFER.seeds), stat_math=dict(TRANSFER.stat_math),
               stat_latex=dict(TRANSFER.stat_latex), net_terminals=("jacov", "naswot"),
               doc=TRANSFER.doc + "; plus whole-network terms (jacov: input-logit Jacobian; naswot: NASWOT's "
                                  "network kernel) as Net terminals")

PACK.seed("jacov", "jacov")  # = gpproxy.baselines.jacov on the cache's minibatch
PACK.seed("naswot", "naswot")  # NASWOT's kernel on layer inputs (gpproxy.baselines.nwot: on nn.ReLU modules)
