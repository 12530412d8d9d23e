"""The NDS design spaces (Radosavovic et al., "On Network Design Spaces for
Visual Recognition", ICCV 2019).

NDS trained tens of thousands of networks with pycls and published one JSON
"sweep summary" per design space (``data.zip``, see ``docs/spaces.md``). Each
job summary holds the model config in ``net``. This module turns such a config
into the network NDS trained. Two families exist:

NAS-cell spaces (Amoeba, DARTS, ENAS, NASNet, PNAS and their ``_fix-w-d``,
``_lr-wd`` and ``_in`` sweeps)
    ``net = {"genotype": {"normal": [[op, input], ...], "normal_concat": [...],
    "reduce": [...], "reduce_concat": [...]}, "width": C, "depth": L, "aux": ...}``.
    The network is pycls' port of DARTS' ``NetworkCIFAR`` (``NetworkImageNet``
    for ``_in`` sweeps): a stem, ``L`` cells with reduction cells at ``L//3``
    and ``2L//3`` (channels doubled there), global average pooling and a linear
    classifier. Intermediate node ``i`` of a cell sums ``op[2i](state[in[2i]])``
    and ``op[2i+1](state[in[2i+1]])``; states 0 and 1 are the two previous cells'
    outputs after a 1x1 ReLU-conv-BN (a factorized reduce when the previous cell
    reduced). In a reduction cell the ops applied to states 0 and 1 have stride 2.
    The cell output concatenates the ``*_concat`` states.

AnyNet spaces (ResNet, ResNeXt-A, ResNeXt-B, Vanilla)
    ``net = {"block_type", "ds", "ws", "ss", "bot_muls", "num_gs"}``: per stage a
    depth, width, stride, bottleneck multiplier and group count. The network is
    the 2019 pycls ``AnyNet``: stem, stages of blocks (``vanilla_block`` = [3x3
    conv, BN, ReLU] x 2; ``res_basic_block`` = ReLU(proj(x) + [3x3, BN, ReLU,
    3x3, BN](x)); ``res_bottleneck_block`` = the same around a 1x1 / grouped 3x3
    / 1x1 bottleneck of width ``round(w * bot_mul)``), then global average
    pooling and a linear classifier.

What is verified and what is a documented reading of unreleased data
---------------------------------------------------------------------
* The NAS-cell builder is checked against NASLib's parameter and FLOP counts
  for 1,218 DARTS-space genotypes (NAS-Bench-Suite-Zero, C=32, 8 cells; all
  exact) and against the 3.3 M parameters DARTS published for its V2 cell at
  C=36, 20 cells (3,349,342 exact; ``tests/test_spaces_nds.py``).
* The NDS JSON files themselves could not be obtained, so the AnyNet reading
  below follows the public code that reads them (NASWOT / EZNAS ``nasspace.py``,
  aw_nas ``dump_archyaml_and_gtpkl.py``, pycls CIFAR configs) and is NOT
  checked against a real file:

  - The lists hold one entry per stage, optionally preceded by a stem entry:
    aw_nas reads entries 1..3 of ``ds``/``ws`` of the CIFAR ResNet sweep, so the
    CIFAR lists have 4 entries of which entry 0 is not a searched stage. We read
    entry 0 as the stem (its width ``ws[0]`` is the stem width; ``ds[0]`` and
    ``ss[0]`` are ignored) whenever the lists have one entry more than the
    space's stage count (3 on CIFAR, 4 on ImageNet). Otherwise every entry is a
    stage and the stem width is 16 (CIFAR, pycls ``R-56_nds`` config) or 64
    (ImageNet). An explicit ``stem_w`` / ``stem_type`` in ``net`` wins.
  - ``num_gs`` is the number of groups of the bottleneck's 3x3 conv (NDS'
    ResNeXt ``g``). NASWOT passes it to pycls as a group *width*; we do not.
  - ``bot_muls`` multiplies the stage width (pycls' ``bot_mul``):
    ``w_b = round(w * bot_mul)``.
  - CIFAR stems are pycls' ``res_stem_cifar`` (3x3 conv, BN, ReLU) for every
    block type; ``_in`` stems are ``res_stem_in`` (7x7/2 conv, BN, ReLU,
    3x3/2 max-pool) for ResNet/ResNeXt and ``simple_stem_in`` (3x3/2 conv, BN,
    ReLU) for Vanilla, as NASWOT assigns them.
  - ``double_plain_block`` (a name seen in NASWOT) is pycls' ``vanilla_block``.

Canonical arch string
---------------------
The compact, sorted-keys JSON of the architecture part of ``net``
(``genotype``, ``width``, ``depth`` for cells; ``block_type``, ``ds``, ``ws``,
``ss`` and, for bottleneck blocks, ``bot_muls``, ``num_gs``, plus ``stem_w`` /
``stem_type`` if given, for AnyNet). Other keys (``aux``, drop-path settings,
...) do not change the scored network and are dropped, so the string alone
rebuilds the net. Ints stay ints and ``bot_muls`` are floats.

Scoring-time choices: the auxiliary head is never built (NDS' ``aux`` only adds a
training-time loss; DARTS' own parameter counts exclude it), drop-path is off,
ReLUs are not in-place (proxies hook layer outputs), and ``forward`` returns
the logits only. NAS-cell nets keep PyTorch's default init (pycls applies none
to them); AnyNets get pycls' ``init_weights`` (conv N(0, sqrt(2/fan_out)), BN
1/0, linear N(0, 0.01)/0).
"""
from __future__ import annotations

import ast
import json
import math
import operator
import re
from typing import Sequence

import torch
from torch import nn

from gpproxy.errors import ArchError

from ._common import compact_json, count_params, describe_network, naslib_flops, short_hash, show

__all__ = [
    "CELL_FAMILIES",
    "ANYNET_FAMILIES",
    "FAMILIES",
    "FAMILY_OPS",
    "BLOCK_TYPES",
    "space_name",
    "parse_space_name",
    "family_of_file",
    "parse_net",
    "format_net",
    "canonical",
    "arch_key",
    "is_cell_net",
    "build_network",
    "build_cell_network",
    "build_anynet",
    "analytic_params",
    "anynet_layout",
    "pycls_init",
    "describe",
    "darts_genotype_from_text",
    "darts_genotype_from_naslib_compact",
    "NASCellNetwork",
    "AnyNet",
    "count_params",
    "naslib_flops",
]

CELL_FAMILIES: tuple[str, ...] = ("amoeba", "darts", "enas", "nasnet", "pnas")
ANYNET_FAMILIES: tuple[str, ...] = ("resnet", "resnext-a", "resnext-b", "vanilla")
FAMILIES = CELL_FAMILIES + ANYNET_FAMILIES

#: Op vocabularies of the NAS-cell spaces (pycls ``models/nas/genotypes.py``).
FAMILY_OPS: dict[str, tuple[str, ...]] = {
    "nasnet": ("skip_connect", "conv_3x1_1x3", "conv_7x1_1x7", "dil_conv_3x3", "avg_pool_3x3",
               "max_pool_3x3", "max_pool_5x5", "max_pool_7x7", "conv_1x1", "conv_3x3",
               "sep_conv_3x3", "sep_conv_5x5", "sep_conv_7x7"),
    "enas": ("skip_connect", "sep_conv_3x3", "sep_conv_5x5", "avg_pool_3x3", "max_pool_3x3"),
    "amoeba": ("skip_connect", "sep_conv_3x3", "sep_conv_5x5", "sep_conv_7x7", "avg_pool_3x3",
               "max_pool_3x3", "dil_sep_conv_3x3", "conv_7x1_1x7"),
    "pnas": ("sep_conv_3x3", "sep_conv_5x5", "sep_conv_7x7", "conv_7x1_1x7", "skip_connect",
             "avg_pool_3x3", "max_pool_3x3", "dil_conv_3x3"),
    "darts": ("none", "max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3",
              "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5"),
}

#: AnyNet block types; ``double_plain_block`` is an alias of ``vanilla_block``.
BLOCK_TYPES: tuple[str, ...] = ("vanilla_block", "double_plain_block", "res_basic_block", "res_bottleneck_block")

# Sweep-file base names (``<Base>[_suffix...].json``) and their family.
_FILE_FAMILIES = {
    "amoeba": "amoeba", "darts": "darts", "enas": "enas", "nasnet": "nasnet", "pnas": "pnas",
    "resnet": "resnet", "resnext-a": "resnext-a", "resnext-b": "resnext-b", "vanilla": "vanilla",
}
_CELL_KEYS = ("normal", "normal_concat", "reduce", "reduce_concat")
_ANYNET_LISTS = ("ds", "ws", "ss")

# --------------------------------------------------------------------------- #
# Space names
# --------------------------------------------------------------------------- #


def space_name(family: str, imagenet: bool = False) -> str:
    """``nds_<family>`` or ``nds_<family>_in``."""
    if family not in FAMILIES:
        raise ArchError(f"unknown NDS family {family!r}; expected one of {', '.join(FAMILIES)}")
    return f"nds_{family}" + ("_in" if imagenet else "")


def parse_space_name(name: str) -> tuple[str, bool]:
    """``"nds_resnext-a_in"`` -> ``("resnext-a", True)``."""
    if not name.startswith("nds_"):
        raise ArchError(f"{name!r} is not an NDS space name (nds_<family>[_in])")
    rest = name[4:]
    imagenet = rest.endswith("_in")
    family = rest[:-3] if imagenet else rest
    if family not in FAMILIES:
        raise ArchError(f"unknown NDS space {name!r}; families: {', '.join(FAMILIES)}")
    return family, imagenet


def family_of_file(filename: str) -> tuple[str, bool] | None:
    """(family, imagenet) from a sweep file name such as ``DARTS_lr-wd_in.json``; None if unknown."""
    stem = re.sub(r"\.json$", "", str(filename).rsplit("/", 1)[-1], flags=re.IGNORECASE)
    parts = stem.split("_")
    family = _FILE_FAMILIES.get(parts[0].lower())
    if family is None:
        return None
    return family, "in" in (p.lower() for p in parts[1:])


# --------------------------------------------------------------------------- #
# Configs: parsing and canonical text
# --------------------------------------------------------------------------- #


def _as_int(value, what: str) -> int:
    if isinstance(value, bool):
        raise ArchError(f"{what} must be an integer, got {show(value)}")
    if isinstance(value, float) and value.is_integer():
        return int(value)
    try:
        return operator.index(value)
    except TypeError:
        raise ArchError(f"{what} must be an integer, got {show(value)}") from None


def _as_float(value, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ArchError(f"{what} must be a finite number, got {show(value)}")
    return float(value)


def _load_config(obj) -> dict:
    """A ``net`` dict from JSON text, a net dict, or a whole job summary (with ``net``)."""
    if isinstance(obj, str):
        text = obj.strip()
        try:
            obj = json.loads(text)
        except ValueError:
            raise ArchError(f"NDS arch must be the JSON of a 'net' config, got {show(text)}") from None
    if not isinstance(obj, dict):
        raise ArchError(f"NDS arch must be a 'net' config dict (or its JSON), got {type(obj).__name__}")
    if "net" in obj and isinstance(obj["net"], dict):
        obj = obj["net"]
    return obj


def is_cell_net(net: dict) -> bool:
    """NAS-cell config (has a genotype), as NASWOT/EZNAS decide it."""
    return isinstance(net, dict) and "genotype" in net


def _concat_list(value):
    """DARTS writes ``normal_concat=range(2, 6)``; accept that text form as well as a list."""
    if isinstance(value, range):
        return list(value)
    if isinstance(value, str):
        m = re.fullmatch(r"\s*range\(\s*(\d+)\s*,\s*(\d+)\s*\)\s*", value)
        if m:
            return list(range(int(m.group(1)), int(m.group(2))))
    return value


def _parse_genotype(genotype, family: str | None) -> dict:
    if not isinstance(genotype, dict):
        raise ArchError(f"NDS genotype must be a dict with {', '.join(_CELL_KEYS)}, got {show(genotype)}")
    missing = [k for k in _CELL_KEYS if k not in genotype]
    if missing:
        raise ArchError(f"NDS genotype lacks {', '.join(repr(k) for k in missing)}: {show(genotype)}")
    vocab = FAMILY_OPS.get(family) if family else None
    out: dict = {}
    for kind in ("normal", "reduce"):
        pairs = genotype[kind]
        if not isinstance(pairs, (list, tuple)) or not pairs or len(pairs) % 2:
            raise ArchError(f"NDS genotype {kind!r} must be a non-empty list of an even number of "
                            f"[op, input] pairs, got {show(pairs)}")
        cell = []
        for j, pair in enumerate(pairs):
            if not isinstance(pair, (list, tuple)) or len(pair) != 2 or not isinstance(pair[0], str):
                raise ArchError(f"NDS genotype {kind}[{j}] must be [op_name, input_index], got {show(pair)}")
            op, src = pair[0], _as_int(pair[1], f"NDS genotype {kind}[{j}] input")
            if op not in _OP_BUILDERS:
                raise ArchError(f"unknown NDS op {op!r} in genotype {kind}[{j}]; known: {', '.join(_OP_BUILDERS)}")
            if vocab is not None and op not in vocab:
                raise ArchError(f"op {op!r} (genotype {kind}[{j}]) is not in the {family} space's vocabulary: "
                                f"{', '.join(vocab)}")
            node = j // 2
            if not 0 <= src < node + 2:
                raise ArchError(f"NDS genotype {kind}[{j}] reads state {src}, but intermediate node {node} "
                                f"can only read states 0..{node + 1}")
            cell.append([op, src])
        out[kind] = cell
        n_states = 2 + len(cell) // 2
        concat = _concat_list(genotype[f"{kind}_concat"])
        if not isinstance(concat, (list, tuple)) or not concat:
            raise ArchError(f"NDS genotype '{kind}_concat' must be a non-empty list of state indices, "
                            f"got {show(concat)}")
        idx = [_as_int(c, f"NDS genotype {kind}_concat entry") for c in concat]
        low = 2 if kind == "reduce" else 0  # reduction-cell inputs have the wrong resolution
        for c in idx:
            if not low <= c < n_states:
                raise ArchError(f"NDS genotype {kind}_concat entry {c} is out of range {low}..{n_states - 1}")
        out[f"{kind}_concat"] = idx
    return out


def _parse_cell_config(net: dict, family: str | None) -> dict:
    for key in ("genotype", "width", "depth"):
        if key not in net:
            raise ArchError(f"NDS cell config lacks {key!r}: {show(net)}")
    width = _as_int(net["width"], "NDS 'width'")
    depth = _as_int(net["depth"], "NDS 'depth'")
    if width < 2 or width % 2:
        raise ArchError(f"NDS 'width' must be an even integer >= 2 (factorized reduce halves it), got {width}")
    if depth < 1:
        raise ArchError(f"NDS 'depth' must be >= 1, got {depth}")
    return {"genotype": _parse_genotype(net["genotype"], family), "width": width, "depth": depth}


def _parse_anynet_config(net: dict) -> dict:
    missing = [k for k in ("block_type",) + _ANYNET_LISTS if k not in net]
    if missing:
        raise ArchError(f"NDS AnyNet config lacks {', '.join(repr(k) for k in missing)}: {show(net)}")
    block = net["block_type"]
    if block not in BLOCK_TYPES:
        raise ArchError(f"unknown NDS block_type {show(block)}; expected one of {', '.join(BLOCK_TYPES)}")
    out: dict = {"block_type": block}
    n = None
    for key in _ANYNET_LISTS:
        values = net[key]
        if not isinstance(values, (list, tuple)) or not values:
            raise ArchError(f"NDS {key!r} must be a non-empty list, got {show(values)}")
        n = len(values) if n is None else n
        if len(values) != n:
            raise ArchError(f"NDS 'ds', 'ws' and 'ss' must have the same length, got {show(dict(net))}")
        out[key] = [_as_int(v, f"NDS {key} entry") for v in values]
    if any(d < 0 for d in out["ds"]) or any(w < 1 for w in out["ws"]) or any(s < 1 for s in out["ss"]):
        raise ArchError(f"NDS depths must be >= 0, widths and strides >= 1: {show(dict(net))}")
    if block == "res_bottleneck_block":
        for key, default, conv in (("bot_muls", 1.0, _as_float), ("num_gs", 1, _as_int)):
            values = net.get(key)
            if values is None or (isinstance(values, (list, tuple)) and all(v is None for v in values)):
                values = [default] * n
            if not isinstance(values, (list, tuple)) or len(values) != n:
                raise ArchError(f"NDS {key!r} must be a list of {n} values (one per stage), got {show(values)}")
            out[key] = [conv(v, f"NDS {key} entry") for v in values]
        if any(b <= 0 for b in out["bot_muls"]) or any(g < 1 for g in out["num_gs"]):
            raise ArchError(f"NDS bot_muls must be > 0 and num_gs >= 1: {show(dict(net))}")
    if net.get("stem_w") is not None:
        out["stem_w"] = _as_int(net["stem_w"], "NDS 'stem_w'")
    if net.get("stem_type") is not None:
        if net["stem_type"] not in _STEMS:
            raise ArchError(f"unknown NDS stem_type {show(net['stem_type'])}; expected one of {', '.join(_STEMS)}")
        out["stem_type"] = net["stem_type"]
    return out


def parse_net(obj, family: str | None = None) -> dict:
    """The canonical architecture dict of an NDS ``net`` config (JSON text, dict or job summary).

    ``family`` (e.g. ``"darts"``) restricts NAS-cell ops to that space's
    vocabulary and rejects configs of the other family (cell vs AnyNet).
    """
    net = _load_config(obj)
    if family is not None and family not in FAMILIES:
        raise ArchError(f"unknown NDS family {family!r}; expected one of {', '.join(FAMILIES)}")
    if is_cell_net(net):
        if family is not None and family not in CELL_FAMILIES:
            raise ArchError(f"a NAS-cell config (with 'genotype') is not an arch of the {family} space")
        return _parse_cell_config(net, family)
    if family is not None and family not in ANYNET_FAMILIES:
        raise ArchError(f"{family} archs need a 'genotype' (NAS-cell config), got {show(net)}")
    return _parse_anynet_config(net)


def format_net(config: dict) -> str:
    """Compact sorted-keys JSON: the canonical arch string."""
    return compact_json(config)


def canonical(obj, family: str | None = None) -> str:
    """Canonical arch string of any accepted form (see module docstring)."""
    return format_net(parse_net(obj, family))


def arch_key(arch: str, family: str | None = None) -> str:
    """File-safe id: ``<family>-<16 hex of sha1(canonical)>``."""
    return short_hash(canonical(arch, family), prefix=family or "nds")


def darts_genotype_from_text(text: str) -> dict:
    """Read DARTS' ``Genotype(normal=[...], normal_concat=..., ...)`` text safely (no eval)."""
    try:
        tree = ast.parse(str(text).strip(), mode="eval").body
    except SyntaxError:
        raise ArchError(f"not a DARTS Genotype(...) text: {show(text)}") from None
    if not (isinstance(tree, ast.Call) and getattr(tree.func, "id", None) == "Genotype" and not tree.args):
        raise ArchError(f"not a DARTS Genotype(...) text: {show(text)}")
    def literal(node):
        # range(a, b) is how DARTS writes the concat lists; everything else must be a literal.
        if (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "range" and not node.keywords
                and 1 <= len(node.args) <= 2):
            return list(range(*(ast.literal_eval(a) for a in node.args)))
        return ast.literal_eval(node)

    try:
        fields = {kw.arg: literal(kw.value) for kw in tree.keywords}
    except (ValueError, TypeError):
        raise ArchError(f"DARTS Genotype fields must be literals: {show(text)}") from None
    out = {k: fields[k] for k in _CELL_KEYS if k in fields}
    for k in ("normal", "reduce"):
        if k in out:
            out[k] = [list(pair) for pair in out[k]]
    for k in ("normal_concat", "reduce_concat"):
        if k in out:
            out[k] = list(out[k])
    return _parse_genotype(out, "darts")


#: NASLib's NB301 op ids (``convert_compact_to_genotype``).
NASLIB_DARTS_OPS = ("max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3", "sep_conv_5x5",
                    "dil_conv_3x3", "dil_conv_5x5")


def darts_genotype_from_naslib_compact(compact) -> dict:
    """NASLib's compact NB301 encoding ``[[(input, op_id) x 8], [... x 8]]`` as a genotype dict."""
    if isinstance(compact, str):
        try:
            compact = ast.literal_eval(compact.strip())
        except (ValueError, SyntaxError):
            raise ArchError(f"NASLib compact encoding must be a literal list, got {show(compact)}") from None
    if not isinstance(compact, (list, tuple)) or len(compact) != 2:
        raise ArchError(f"NASLib compact encoding needs [normal, reduce], got {show(compact)}")
    cells = []
    for cell in compact:
        pairs = []
        for pair in cell:
            src, op = pair
            op = _as_int(op, "NASLib op id")
            if not 0 <= op < len(NASLIB_DARTS_OPS):
                raise ArchError(f"NASLib NB301 op id {op} is out of range 0..{len(NASLIB_DARTS_OPS) - 1}")
            pairs.append([NASLIB_DARTS_OPS[op], _as_int(src, "NASLib input node")])
        cells.append(pairs)
    return _parse_genotype({"normal": cells[0], "normal_concat": [2, 3, 4, 5],
                            "reduce": cells[1], "reduce_concat": [2, 3, 4, 5]}, "darts")


# --------------------------------------------------------------------------- #
# NAS-cell ops (pycls models/nas/operations.py)
# --------------------------------------------------------------------------- #


class Zero(nn.Module):
    """``none``: zeros with the output shape, still connected to the input."""

    def __init__(self, stride: int):
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            return x.mul(0.0)
        return x[:, :, :: self.stride, :: self.stride].mul(0.0)


class FactorizedReduce(nn.Module):
    """Halve the resolution with two offset 1x1/2 convs (pycls variant: pads, so odd sizes work)."""

    def __init__(self, c_in: int, c_out: int, affine: bool = True):
        super().__init__()
        if c_out % 2:
            raise ArchError(f"factorized reduce needs an even channel count, got {c_out}")
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, padding=0, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, padding=0, bias=False)
        self.bn = nn.BatchNorm2d(c_out, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        shifted = nn.functional.pad(x, (0, 1, 0, 1))[:, :, 1:, 1:]
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(shifted)], dim=1))


def _relu_conv_bn(c_in, c_out, kernel, stride, padding, affine=True) -> nn.Sequential:
    return nn.Sequential(nn.ReLU(inplace=False),
                         nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, bias=False),
                         nn.BatchNorm2d(c_out, affine=affine))


def _dil_conv(c, kernel, stride, padding, dilation, affine) -> nn.Sequential:
    """ReLU, depthwise (dilated) conv, pointwise conv, BN."""
    return nn.Sequential(
        nn.ReLU(inplace=False),
        nn.Conv2d(c, c, kernel, stride=stride, padding=padding, dilation=dilation, groups=c, bias=False),
        nn.Conv2d(c, c, 1, bias=False),
        nn.BatchNorm2d(c, affine=affine))


def _sep_conv(c, kernel, stride, padding, affine, dilation=1) -> nn.Sequential:
    """Two stacked ``_dil_conv`` blocks; only the first one strides."""
    return nn.Sequential(*_dil_conv(c, kernel, stride, padding, dilation, affine),
                         *_dil_conv(c, kernel, 1, padding, dilation, affine))


def _factorized_conv(c, k, stride, affine) -> nn.Sequential:
    """ReLU, 1xk conv, kx1 conv, BN (``conv_3x1_1x3`` / ``conv_7x1_1x7``)."""
    return nn.Sequential(
        nn.ReLU(inplace=False),
        nn.Conv2d(c, c, (1, k), stride=(1, stride), padding=(0, k // 2), bias=False),
        nn.Conv2d(c, c, (k, 1), stride=(stride, 1), padding=(k // 2, 0), bias=False),
        nn.BatchNorm2d(c, affine=affine))


_OP_BUILDERS = {
    "none": lambda c, s, a: Zero(s),
    "skip_connect": lambda c, s, a: nn.Identity() if s == 1 else FactorizedReduce(c, c, affine=a),
    "avg_pool_3x3": lambda c, s, a: nn.AvgPool2d(3, stride=s, padding=1, count_include_pad=False),
    "max_pool_3x3": lambda c, s, a: nn.MaxPool2d(3, stride=s, padding=1),
    "max_pool_5x5": lambda c, s, a: nn.MaxPool2d(5, stride=s, padding=2),
    "max_pool_7x7": lambda c, s, a: nn.MaxPool2d(7, stride=s, padding=3),
    "conv_1x1": lambda c, s, a: _relu_conv_bn(c, c, 1, s, 0, a),
    "conv_3x3": lambda c, s, a: _relu_conv_bn(c, c, 3, s, 1, a),
    "sep_conv_3x3": lambda c, s, a: _sep_conv(c, 3, s, 1, a),
    "sep_conv_5x5": lambda c, s, a: _sep_conv(c, 5, s, 2, a),
    "sep_conv_7x7": lambda c, s, a: _sep_conv(c, 7, s, 3, a),
    "dil_conv_3x3": lambda c, s, a: _dil_conv(c, 3, s, 2, 2, a),
    "dil_conv_5x5": lambda c, s, a: _dil_conv(c, 5, s, 4, 2, a),
    "dil_sep_conv_3x3": lambda c, s, a: _sep_conv(c, 3, s, 2, a, dilation=2),
    "conv_3x1_1x3": lambda c, s, a: _factorized_conv(c, 3, s, a),
    "conv_7x1_1x7": lambda c, s, a: _factorized_conv(c, 7, s, a),
}


class Cell(nn.Module):
    """One NAS cell: preprocess the two inputs, build the nodes, concatenate."""

    def __init__(self, pairs: Sequence, concat: Sequence[int], c_pp: int, c_p: int, c: int,
                 reduction: bool, reduction_prev: bool, affine: bool = True):
        super().__init__()
        self.reduction = reduction
        # pycls builds the preprocessing with affine BN whatever the cell ops use.
        self.preprocess0 = FactorizedReduce(c_pp, c) if reduction_prev else _relu_conv_bn(c_pp, c, 1, 1, 0)
        self.preprocess1 = _relu_conv_bn(c_p, c, 1, 1, 0)
        self.indices = [src for _, src in pairs]
        self.ops = nn.ModuleList(
            _OP_BUILDERS[name](c, 2 if reduction and src < 2 else 1, affine) for name, src in pairs)
        self.concat = list(concat)
        self.multiplier = len(self.concat)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for i in range(len(self.ops) // 2):
            a = self.ops[2 * i](states[self.indices[2 * i]])
            b = self.ops[2 * i + 1](states[self.indices[2 * i + 1]])
            states.append(a + b)
        return torch.cat([states[i] for i in self.concat], dim=1)


class NASCellNetwork(nn.Module):
    """pycls' ``NetworkCIFAR`` / ``NetworkImageNet`` without the auxiliary head."""

    def __init__(self, config: dict, num_classes: int = 10, imagenet: bool = False, cell_bn_affine: bool = True):
        super().__init__()
        genotype, c, layers = config["genotype"], config["width"], config["depth"]
        self.imagenet = imagenet
        if imagenet:
            self.stem0 = nn.Sequential(
                nn.Conv2d(3, c // 2, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c // 2),
                nn.ReLU(inplace=False),
                nn.Conv2d(c // 2, c, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c))
            self.stem1 = nn.Sequential(
                nn.ReLU(inplace=False), nn.Conv2d(c, c, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c))
            c_pp, c_p, c_curr, reduction_prev = c, c, c, True
        else:
            self.stem = nn.Sequential(nn.Conv2d(3, 3 * c, 3, padding=1, bias=False), nn.BatchNorm2d(3 * c))
            c_pp, c_p, c_curr, reduction_prev = 3 * c, 3 * c, c, False
        self.cells = nn.ModuleList()
        for i in range(layers):
            reduction = i in (layers // 3, 2 * layers // 3)
            if reduction:
                c_curr *= 2
            kind = "reduce" if reduction else "normal"
            cell = Cell(genotype[kind], genotype[f"{kind}_concat"], c_pp, c_p, c_curr, reduction,
                        reduction_prev, affine=cell_bn_affine)
            self.cells.append(cell)
            reduction_prev = reduction
            c_pp, c_p = c_p, cell.multiplier * c_curr
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_p, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.imagenet:
            s0 = self.stem0(x)
            s1 = self.stem1(s0)
        else:
            s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1)
        return self.classifier(torch.flatten(self.global_pooling(s1), 1))


# --------------------------------------------------------------------------- #
# AnyNet (2019 pycls models/anynet.py)
# --------------------------------------------------------------------------- #


def _conv_bn(c_in, c_out, kernel, stride=1, groups=1) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, groups=groups, bias=False),
            nn.BatchNorm2d(c_out)]


class VanillaBlock(nn.Module):
    """[3x3 conv, BN, ReLU] x 2, no shortcut."""

    def __init__(self, w_in: int, w_out: int, stride: int, bot_mul=None, groups=None):
        super().__init__()
        self.f = nn.Sequential(*_conv_bn(w_in, w_out, 3, stride), nn.ReLU(inplace=False),
                               *_conv_bn(w_out, w_out, 3), nn.ReLU(inplace=False))

    def forward(self, x):
        return self.f(x)


class _Residual(nn.Module):
    """ReLU(shortcut(x) + f(x)); the shortcut is a 1x1 conv + BN when the shape changes."""

    def __init__(self, w_in: int, w_out: int, stride: int):
        super().__init__()
        self.proj = nn.Sequential(*_conv_bn(w_in, w_out, 1, stride)) if (w_in != w_out or stride != 1) else None
        self.relu = nn.ReLU(inplace=False)

    def forward(self, x):
        shortcut = self.proj(x) if self.proj is not None else x
        return self.relu(shortcut + self.f(x))


class ResBasicBlock(_Residual):
    """Residual basic block: f = [3x3, BN, ReLU, 3x3, BN]."""

    def __init__(self, w_in: int, w_out: int, stride: int, bot_mul=None, groups=None):
        super().__init__(w_in, w_out, stride)
        self.f = nn.Sequential(*_conv_bn(w_in, w_out, 3, stride), nn.ReLU(inplace=False),
                               *_conv_bn(w_out, w_out, 3))


class ResBottleneckBlock(_Residual):
    """Residual bottleneck: f = [1x1, BN, ReLU, grouped 3x3 (stride), BN, ReLU, 1x1, BN]."""

    def __init__(self, w_in: int, w_out: int, stride: int, bot_mul: float = 1.0, groups: int = 1):
        super().__init__(w_in, w_out, stride)
        w_b = int(round(w_out * bot_mul))
        if w_b < 1 or w_b % groups:
            raise ArchError(f"bottleneck width round({w_out} * {bot_mul}) = {w_b} is not divisible by "
                            f"{groups} groups")
        self.f = nn.Sequential(*_conv_bn(w_in, w_b, 1), nn.ReLU(inplace=False),
                               *_conv_bn(w_b, w_b, 3, stride, groups), nn.ReLU(inplace=False),
                               *_conv_bn(w_b, w_out, 1))


_BLOCKS = {"vanilla_block": VanillaBlock, "double_plain_block": VanillaBlock,
           "res_basic_block": ResBasicBlock, "res_bottleneck_block": ResBottleneckBlock}


def _stem(kind: str, w: int) -> nn.Sequential:
    if kind == "res_stem_cifar":
        return nn.Sequential(*_conv_bn(3, w, 3), nn.ReLU(inplace=False))
    if kind == "res_stem_in":
        return nn.Sequential(nn.Conv2d(3, w, 7, stride=2, padding=3, bias=False), nn.BatchNorm2d(w),
                             nn.ReLU(inplace=False), nn.MaxPool2d(3, stride=2, padding=1))
    if kind == "simple_stem_in":
        return nn.Sequential(*_conv_bn(3, w, 3, 2), nn.ReLU(inplace=False))
    raise ArchError(f"unknown stem type {kind!r}")


_STEMS = ("res_stem_cifar", "res_stem_in", "simple_stem_in")


def anynet_layout(config: dict, family: str, imagenet: bool) -> dict:
    """How a canonical AnyNet config is read: stem type/width and per-stage tuples."""
    n_stages = 4 if imagenet else 3
    stages = list(zip(config["ds"], config["ws"], config["ss"],
                      config.get("bot_muls", [None] * len(config["ds"])),
                      config.get("num_gs", [None] * len(config["ds"]))))
    if "stem_w" in config:
        stem_w = config["stem_w"]
    elif len(stages) == n_stages + 1:
        stem_w = stages[0][1]
        stages = stages[1:]
    else:
        stem_w = 64 if imagenet else 16
    if "stem_type" in config:
        stem_type = config["stem_type"]
    elif not imagenet:
        stem_type = "res_stem_cifar"
    else:
        stem_type = "simple_stem_in" if family == "vanilla" else "res_stem_in"
    return {"stem_type": stem_type, "stem_w": stem_w, "stages": stages}


class AnyNet(nn.Module):
    """Stem, stages of blocks (the first block of a stage strides), GAP, linear."""

    def __init__(self, config: dict, num_classes: int = 10, family: str = "resnet", imagenet: bool = False):
        super().__init__()
        layout = anynet_layout(config, family, imagenet)
        block = _BLOCKS[config["block_type"]]
        self.stem = _stem(layout["stem_type"], layout["stem_w"])
        w_prev = layout["stem_w"]
        self.stages = nn.ModuleList()
        for d, w, s, b, g in layout["stages"]:
            blocks = [block(w_prev if i == 0 else w, w, s if i == 0 else 1, b, g) for i in range(d)]
            self.stages.append(nn.Sequential(*blocks))
            if d:
                w_prev = w
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(w_prev, num_classes)

    def forward(self, x):
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return self.classifier(torch.flatten(self.global_pooling(x), 1))


def pycls_init(net: nn.Module) -> nn.Module:
    """pycls' ResNet-style ``init_weights`` (ZERO_INIT_FINAL_GAMMA off, its default)."""
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
            nn.init.normal_(m.weight, mean=0.0, std=math.sqrt(2.0 / fan_out))
        elif isinstance(m, nn.BatchNorm2d) and m.affine:
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, mean=0.0, std=0.01)
            nn.init.zeros_(m.bias)
    return net


# --------------------------------------------------------------------------- #
# Builders
# --------------------------------------------------------------------------- #


def build_cell_network(arch, num_classes: int = 10, imagenet: bool = False, family: str | None = None,
                       cell_bn_affine: bool = True) -> NASCellNetwork:
    """The NAS-cell network of ``arch`` (any form ``parse_net`` reads).

    ``cell_bn_affine=False`` gives the cell ops' BatchNorms no affine
    parameters, as NASLib's NB301 graph (and DARTS' search phase) build them;
    NDS/pycls and DARTS' evaluation networks use affine BNs (the default).
    """
    config = parse_net(arch, family)
    if "genotype" not in config:
        raise ArchError("build_cell_network needs a NAS-cell config (with 'genotype')")
    return NASCellNetwork(config, num_classes=num_classes, imagenet=imagenet, cell_bn_affine=cell_bn_affine)


def build_anynet(arch, num_classes: int = 10, family: str = "resnet", imagenet: bool = False) -> AnyNet:
    """The AnyNet of ``arch`` with pycls' initialisation."""
    config = parse_net(arch, family)
    if "block_type" not in config:
        raise ArchError("build_anynet needs an AnyNet config (block_type, ds, ws, ss)")
    return pycls_init(AnyNet(config, num_classes=num_classes, family=family, imagenet=imagenet))


def build_network(arch, num_classes: int = 10, family: str | None = None, imagenet: bool = False) -> nn.Module:
    """The network NDS trained for ``arch`` (cell or AnyNet, decided by the config)."""
    config = parse_net(arch, family)
    if "genotype" in config:
        return NASCellNetwork(config, num_classes=num_classes, imagenet=imagenet)
    return pycls_init(AnyNet(config, num_classes=num_classes, family=family or "resnet", imagenet=imagenet))


def _op_params(name: str, c: int, stride: int, affine: bool) -> int:
    bn = 2 * c if affine else 0
    if name in ("none", "avg_pool_3x3", "max_pool_3x3", "max_pool_5x5", "max_pool_7x7"):
        return 0
    if name == "skip_connect":
        return 0 if stride == 1 else c * c + bn  # two 1x1 convs to c/2 channels each
    if name in ("conv_1x1", "conv_3x3"):
        k = 1 if name == "conv_1x1" else 3
        return k * k * c * c + bn
    if name in ("conv_3x1_1x3", "conv_7x1_1x7"):
        k = 3 if name == "conv_3x1_1x3" else 7
        return 2 * k * c * c + bn
    k = int(name[-1])
    single = k * k * c + c * c + bn  # depthwise + pointwise + BN
    return single if name.startswith("dil_conv") else 2 * single  # sep_conv, dil_sep_conv


def analytic_params(arch, num_classes: int = 10, imagenet: bool = False, family: str | None = None,
                    cell_bn_affine: bool = True) -> int:
    """``count_params(build_cell_network(...))`` computed without building anything."""
    config = parse_net(arch, family)
    if "genotype" not in config:
        raise ArchError("analytic_params covers NAS-cell configs only")
    genotype, c, layers = config["genotype"], config["width"], config["depth"]
    if imagenet:
        total = 27 * (c // 2) + c + 9 * (c // 2) * c + 2 * c + 9 * c * c + 2 * c
        c_pp, c_p, c_curr = c, c, c
    else:
        total = 27 * 3 * c + 6 * c
        c_pp, c_p, c_curr = 3 * c, 3 * c, c
    for i in range(layers):
        reduction = i in (layers // 3, 2 * layers // 3)
        if reduction:
            c_curr *= 2
        kind = "reduce" if reduction else "normal"
        total += c_pp * c_curr + 2 * c_curr + c_p * c_curr + 2 * c_curr  # the two preprocessing layers
        total += sum(_op_params(name, c_curr, 2 if reduction and src < 2 else 1, cell_bn_affine)
                     for name, src in genotype[kind])
        c_pp, c_p = c_p, len(genotype[f"{kind}_concat"]) * c_curr
    return total + c_p * num_classes + num_classes


def describe(arch, num_classes: int = 10, family: str | None = None, imagenet: bool = False) -> dict:
    """Canonical string, key, parameter count, MACs and weight layers (32x32 input; 224x224 for ``_in``)."""
    text = canonical(arch, family)
    net = build_network(text, num_classes, family, imagenet)
    res = 224 if imagenet else 32
    header = {"arch": text, "key": short_hash(text, prefix=family or "nds"),
              "space": space_name(family, imagenet) if family else "nds"}
    if family in ANYNET_FAMILIES:
        layout = anynet_layout(json.loads(text), family, imagenet)
        header["stem"] = {"type": layout["stem_type"], "width": layout["stem_w"]}
    return describe_network(net, (1, 3, res, res), **header)
