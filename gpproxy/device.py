"""Which torch device a run, cache build or score uses: ``auto`` is CUDA when torch sees it."""
from __future__ import annotations

import torch

from .errors import GpproxyError


def resolve_device(name: str) -> str:
    name = str(name)
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise GpproxyError("device cuda requested but torch sees no CUDA device")
    return name
