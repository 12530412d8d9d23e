"""The population pack: the transfer pack plus population-level combination
(issue 12, part 4), as AZ-NAS and VKDNW_agg aggregate their terms.

``log_rank(x)`` is log(rank / N) of a per-network formula over the networks
scored together (ranks 1..N, ties averaged, higher = better); ``add`` also
acts on these values, so ``add(log_rank(f), log_rank(g))`` is AZ-NAS's Σ
log-rank of two terms (equal weights, as AZ-NAS and VKDNW_agg: a ``mul`` on
them made half the random formulas products of constants).

A formula with ``log_rank`` is population-level: a network's score depends on
the others scored with it (during a search: the task's search archs; held-out:
the held-out archs; an export: the nets passed to ``score_population``). Formulas
without it are the transfer pack's, unchanged.
"""
from dataclasses import replace

import torch

from gpproxy.pack import Pop
from primitives.transfer import PACK as TRANSFER

PACK = replace(TRANSFER, name="population", stats=dict(TRANSFER.stats), prims=dict(TRANSFER.prims),
               seeds=dict(TRANSFER.seeds), stat_math=dict(TRANSFER.stat_math),
               stat_latex=dict(TRANSFER.stat_latex),
               doc=TRANSFER.doc + "; plus population-level log-rank combination (log_rank; add on its values)")


@PACK.population("log_rank", math="log rank({0})", latex=r"\log\operatorname{{rank}}\left({0}\right)")
def log_rank(v):
    """log(rank / N) over the networks scored together: ranks 1..N, ties averaged."""
    s = torch.sort(v).values
    lo = torch.searchsorted(s, v, right=False)
    hi = torch.searchsorted(s, v, right=True)
    return torch.log((lo + hi + 1).to(torch.float64) / (2.0 * v.shape[0])).to(v.dtype)


PACK.extend("add", on=(Pop,))

# AZ-NAS's aggregation of its expressivity- and progressivity-like terms with #params
# (AZ-NAS ranks FLOPs; #params is what the cache knows), written in this vocabulary.
PACK.seeds = {"aznas_like": "add(add(log_rank(sum_layers(eig_entropy(A))), "
                            "log_rank(last_minus_first(eig_entropy(A)))), log_rank(sum_layers(params)))",
              **PACK.seeds}
