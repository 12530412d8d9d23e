"""Where the work runs: which torch device a run, cache build or score uses (``auto`` is CUDA when torch
sees it), and how many local worker processes share it."""
from __future__ import annotations

import os

import torch

from .errors import GpproxyError


def resolve_device(name: str) -> str:
    name = str(name)
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise GpproxyError("device cuda requested but torch sees no CUDA device")
    return name


def worker_count(jobs: int, items: int) -> int:
    """Local worker processes for ``items`` pieces of work: at most one per item and per CPU (each runs one
    torch thread, so more only wait; ``--jobs 1000`` would start hundreds of idle processes)."""
    return max(1, min(int(jobs), int(items), os.cpu_count() or 1))
