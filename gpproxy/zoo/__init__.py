"""The proxy zoo: formulas gpproxy found, by name (``zoo:NAME``), with the
protocol they were measured under and their measured tables.

Each entry is a JSON file beside this module, written by
``experiments/transfer.py --stage report`` (never by hand): the formula, its
primitive pack, when to use it, the statistics protocol (batch, input, seed)
and the report's numbers on held-out archs. ``gpproxy score``, ``bench`` and
``export`` take ``zoo:NAME`` wherever they take a formula.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import GpproxyError

PREFIX = "zoo:"
HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class ZooEntry:
    name: str
    formula: str
    pack: str
    use: str
    # batch, input, seed of the statistics it was measured with; resolution: the nets' input size, where it is
    # not each dataset's own
    protocol: dict = field(default_factory=dict)
    measured: dict = field(default_factory=dict)  # report column -> {kendall, spearman, ndcg, ..., n}
    source: str = ""

    @property
    def label(self) -> str:
        return PREFIX + self.name


def names() -> list:
    return sorted(p.stem for p in HERE.glob("*.json"))


def is_zoo(text) -> bool:
    return isinstance(text, str) and text.strip().startswith(PREFIX)


def entry(text: str) -> ZooEntry:
    """The entry named ``zoo:NAME`` (or ``NAME``)."""
    name = text.strip().removeprefix(PREFIX)
    if name not in names():
        raise GpproxyError(f"no zoo entry {text!r}; the zoo has: "
                           + (", ".join(PREFIX + n for n in names()) or "nothing yet"))
    try:
        data = json.loads((HERE / f"{name}.json").read_text())
        e = ZooEntry(**{k: data[k] for k in ("name", "formula", "pack", "use")},
                     protocol=data.get("protocol", {}), measured=data.get("measured", {}),
                     source=data.get("source", ""))
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise GpproxyError(f"zoo entry {name}: unreadable ({type(e).__name__}: {e})") from None
    _check_protocol(name, e.protocol)
    return e


def _check_protocol(name: str, protocol) -> None:
    from ..scoring.protocol import check_minibatch

    if not isinstance(protocol, dict):
        raise GpproxyError(f"zoo entry {name}: protocol must be a JSON object, not {type(protocol).__name__}")
    try:
        check_minibatch(protocol)
    except GpproxyError as err:
        raise GpproxyError(f"zoo entry {name}: protocol {err}") from None


DEFAULT_BATCH = 64  # a proxy that is not a zoo entry: NASLib's and most papers' minibatch


def scoring_protocol(proxy, batch: int | None = None, resolution: int | None = None) -> tuple:
    """(batch, resolution) to score ``proxy`` with: the given ones; where None, a zoo entry's own protocol (the
    one its tables were measured under), else batch 64 and each dataset's own input size (resolution None)."""
    own = entry(proxy).protocol if is_zoo(proxy) else {}  # checked by entry()
    if batch is None:
        batch = own.get("batch", DEFAULT_BATCH)
    if resolution is None:
        resolution = own.get("resolution")
    return batch, resolution


def protocol_notes(proxy_texts, batch: int, resolution: int | None) -> list:
    """One line per zoo entry among ``proxy_texts`` scored under another batch or input size than the one its
    measured table used (a bench scores every proxy under one protocol; --batch/--resolution override)."""
    def size(r):
        return "each dataset's own input size" if r is None else f"{r}x{r} inputs"

    out = []
    for text in dict.fromkeys(t for t in proxy_texts if is_zoo(t)):
        e = entry(text)
        own_batch, own_res = e.protocol.get("batch"), e.protocol.get("resolution")
        diffs = ([f"batch {own_batch} (here {batch})"] if own_batch is not None and own_batch != batch else []) + (
            [f"{size(own_res)} (here {size(resolution)})"] if own_res != resolution else [])
        if diffs:
            out.append(f"{e.label}'s measured table used {' and '.join(diffs)}: its numbers here are not that "
                       "table's")
    return out

