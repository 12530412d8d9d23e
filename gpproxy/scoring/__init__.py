"""Score proxies on a benchmark (``gpproxy score``) and tabulate them (``gpproxy bench``).

One module per concern: :mod:`.protocol` (what a score depends on),
:mod:`.proxies` (what can be scored), :mod:`.store` (per-arch scores on disk,
NAS-Bench-Suite-Zero layout), :mod:`.truth` (targets per dataset),
:mod:`.compute` (running proxies and formulas), :mod:`.metrics`
(correlations), :mod:`.run` (``run_score`` / ``run_bench``) and
:mod:`.report` (the bench tables).
"""
from .compute import compute_scores, score_arch
from .metrics import METRICS, report, summarize, trial_indices
from .protocol import Protocol
from .proxies import Proxy, resolve_proxies, resolve_proxy
from .run import Scores, run_bench, run_score, score_proxy
from .store import ScoreStore, suite_key
from .truth import ANALOG, Truth, load_truth

__all__ = ["ANALOG", "METRICS", "Protocol", "Proxy", "ScoreStore", "Scores", "Truth", "compute_scores", "load_truth",
           "report", "resolve_proxies", "resolve_proxy", "run_bench", "run_score", "score_arch", "score_proxy", "summarize",
           "suite_key", "trial_indices"]
