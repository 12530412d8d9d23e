"""NAS-Bench-101 (Ying et al., ICML 2019) cells as a gpproxy user space file.

The network follows NB101's own model builder (and its PyTorch port
``nasbench_pytorch``): a 3x3 conv stem with 128 channels + BN + ReLU, 3 stacks of
3 cells, a 2x2 max-pool (stride 2) before stacks 2 and 3 that also doubles the
channels, global average pooling and a linear classifier. Inside a cell, vertex
channels are split as NB101's ``ComputeVertexChannels``; the cell input reaches a
vertex through a 1x1 conv-BN-ReLU projection, inputs of a vertex are summed (wider
ones truncated), vertices feeding the output are concatenated, and a direct
input -> output edge adds a projection of the input to that concatenation.

Canonical arch string, from the PRUNED spec (only vertices on an input -> output
path are kept, as NB101's ``ModelSpec`` does)::

    matrix=011111/000001/000001/000010/000001/000000;ops=input|maxpool3x3|maxpool3x3|conv3x3-bn-relu|conv3x3-bn-relu|output

``canonical`` accepts any ``matrix=ROWS;ops=OPS`` spelling (unpruned 7x7 included,
keys in either order) and returns the pruned form, so the pruned and unpruned
spellings of one cell give one string. Ops: ``conv3x3-bn-relu``,
``conv1x1-bn-relu``, ``maxpool3x3``. The NB101 limits apply to the pruned spec
(at most 7 vertices and 9 edges). Cells that are isomorphic but number their
vertices differently stay different strings: NB101 merges them by graph hash, but
the channel split's remainder goes to the lowest-numbered output vertices, so
their networks differ by a few parameters.

Parameter counts equal NB101's trainable-parameter convention (conv weights, BN
scale and shift, classifier weight and bias); tests/test_example_spaces.py checks
them against the ``params`` column of NAS-Bench-Suite-Zero's NB101 table. Use it
with ``space = "examples/spaces/nb101.py"`` in a ``[[task]]``.
"""
from __future__ import annotations

import torch
from torch import nn

OPS = ("conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3")
MAX_VERTICES = 7
MAX_EDGES = 9
STEM_CHANNELS = 128
NUM_STACKS = 3
CELLS_PER_STACK = 3
# NB101 trains with TF batch-norm momentum 0.997, i.e. PyTorch momentum 0.003.
BN_MOMENTUM = 1 - 0.997
BN_EPS = 1e-5
# NAS-Bench-Suite-Zero's NB101 table names cells by their NASLib tuple, and holds
# several unpruned spellings of one pruned cell: their rows are averaged.
ARCH_COLUMNS = ("arch", "naslib_tuple")
AVERAGE_REPEATS = True


def _from_naslib_tuple(arch: str) -> str:
    """NASLib's NB101 encoding (NAS-Bench-Suite-Zero's ``naslib_tuple`` column):
    the 7x7 matrix row by row, then 7 op codes (0 input, 1 output, 2 maxpool3x3,
    3 conv1x1, 4 conv3x3)."""
    codes = {0: "input", 1: "output", 2: "maxpool3x3", 3: "conv1x1-bn-relu", 4: "conv3x3-bn-relu"}
    try:
        values = [int(v) for v in arch.strip()[1:-1].split(",")]
    except ValueError:
        raise ValueError(f"NB101 arch {arch!r} is not a NASLib tuple of 56 integers") from None
    if len(values) != 56 or any(v not in (0, 1) for v in values[:49]) or any(v not in codes for v in values[49:]):
        raise ValueError(f"NB101 arch {arch!r} is not a NASLib tuple (49 matrix bits, then 7 op codes 0-4)")
    rows = "/".join("".join(map(str, values[7 * i:7 * i + 7])) for i in range(7))
    return f"matrix={rows};ops=" + "|".join(codes[v] for v in values[49:])


def _parse(arch: str) -> tuple[list[list[int]], list[str]]:
    if not isinstance(arch, str):
        raise ValueError(f"NB101 arch {arch!r} is not a string 'matrix=ROWS;ops=OPS'")
    if arch.strip().startswith("("):
        arch = _from_naslib_tuple(arch)
    fields = {}
    for part in arch.strip().split(";"):
        key, sep, value = part.partition("=")
        if not sep or key.strip() not in ("matrix", "ops") or key.strip() in fields:
            raise ValueError(f"NB101 arch {arch!r} is not 'matrix=0110/0001/0001/0000;ops=input|...|output'")
        fields[key.strip()] = value.strip()
    if set(fields) != {"matrix", "ops"}:
        raise ValueError(f"NB101 arch {arch!r} needs both matrix= and ops=")
    rows = fields["matrix"].split("/")
    ops = [op.strip() for op in fields["ops"].split("|")]
    n = len(rows)
    if any(len(row) != n or set(row) - set("01") for row in rows):
        raise ValueError(f"NB101 arch {arch!r}: matrix is not a square 0/1 matrix with rows joined by '/'")
    matrix = [[int(c) for c in row] for row in rows]
    if len(ops) != n:
        raise ValueError(f"NB101 arch {arch!r}: {len(ops)} ops for a {n}x{n} matrix")
    if n < 2 or ops[0] != "input" or ops[-1] != "output" or set(ops[1:-1]) - set(OPS):
        raise ValueError(f"NB101 arch {arch!r}: ops must be input, then {'/'.join(OPS)}, then output")
    if any(matrix[i][j] for i in range(n) for j in range(i + 1)):
        raise ValueError(f"NB101 arch {arch!r}: matrix is not strictly upper-triangular")
    return matrix, ops


def _prune(matrix: list[list[int]], ops: list[str], arch: str) -> tuple[list[list[int]], list[str]]:
    """Keep only vertices on an input -> output path (NB101 ``ModelSpec._prune``)."""
    n = len(matrix)
    forward, backward = {0}, {n - 1}
    for v in range(1, n):
        if any(matrix[u][v] for u in forward):
            forward.add(v)
    for v in range(n - 2, -1, -1):
        if any(matrix[v][w] for w in backward):
            backward.add(v)
    keep = sorted(forward & backward)
    if n - 1 not in forward:
        raise ValueError(f"NB101 arch {arch!r}: no path from input to output")
    return [[matrix[i][j] for j in keep] for i in keep], [ops[i] for i in keep]


def _pruned_spec(arch: str) -> tuple[list[list[int]], list[str]]:
    matrix, ops = _prune(*_parse(arch), arch)
    if len(ops) > MAX_VERTICES:
        raise ValueError(f"NB101 arch {arch!r}: {len(ops)} vertices after pruning (NB101 allows {MAX_VERTICES})")
    edges = sum(map(sum, matrix))
    if edges > MAX_EDGES:
        raise ValueError(f"NB101 arch {arch!r}: {edges} edges after pruning (NB101 allows {MAX_EDGES})")
    return matrix, ops


def canonical(arch: str) -> str:
    matrix, ops = _pruned_spec(arch)
    return "matrix=" + "/".join("".join(map(str, row)) for row in matrix) + ";ops=" + "|".join(ops)


def vertex_channels(in_channels: int, out_channels: int, matrix: list[list[int]]) -> list[int]:
    """NB101's ``ComputeVertexChannels``: output channels are split over the vertices that
    feed the output (remainder to the first ones); other vertices take the widest successor."""
    n = len(matrix)
    channels = [0] * n
    channels[0], channels[-1] = in_channels, out_channels
    if n == 2:
        return channels
    feeding = [v for v in range(1, n - 1) if matrix[v][n - 1]]
    share, extra = divmod(out_channels, len(feeding))
    for i, v in enumerate(feeding):
        channels[v] = share + (1 if i < extra else 0)
    for v in range(n - 3, 0, -1):
        if not matrix[v][n - 1]:
            channels[v] = max(channels[w] for w in range(v + 1, n - 1) if matrix[v][w])
    return channels


class ConvBNReLU(nn.Module):
    def __init__(self, cin: int, cout: int, kernel: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, 1, kernel // 2, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=BN_EPS, momentum=BN_MOMENTUM)
        # A module, not torch.relu, so hook-based FLOP counters (NASLib's) see it.
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.conv(x)))


def _op(name: str, channels: int) -> nn.Module:
    if name == "maxpool3x3":
        return nn.MaxPool2d(3, 1, 1)
    return ConvBNReLU(channels, channels, 3 if name == "conv3x3-bn-relu" else 1)


class Cell(nn.Module):
    def __init__(self, matrix: list[list[int]], ops: list[str], cin: int, cout: int):
        super().__init__()
        self.matrix = matrix
        n = len(matrix)
        self.channels = vertex_channels(cin, cout, matrix)
        self.ops = nn.ModuleDict({str(t): _op(ops[t], self.channels[t]) for t in range(1, n - 1)})
        self.projections = nn.ModuleDict({str(t): ConvBNReLU(cin, self.channels[t], 1)
                                          for t in range(1, n) if matrix[0][t]})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, m = len(self.matrix), self.matrix
        values, concat = [x], []
        for t in range(1, n - 1):
            fan_in = [values[s][:, :self.channels[t]] for s in range(1, t) if m[s][t]]
            if m[0][t]:
                fan_in.append(self.projections[str(t)](x))
            values.append(self.ops[str(t)](sum(fan_in)))
            if m[t][n - 1]:
                concat.append(values[t])
        if not concat:
            return self.projections[str(n - 1)](x)
        out = torch.cat(concat, 1) if len(concat) > 1 else concat[0]
        return out + self.projections[str(n - 1)](x) if m[0][n - 1] else out


class NB101Net(nn.Module):
    def __init__(self, matrix: list[list[int]], ops: list[str], num_classes: int):
        super().__init__()
        layers: list[nn.Module] = [ConvBNReLU(3, STEM_CHANNELS, 3)]
        cin = cout = STEM_CHANNELS
        for stack in range(NUM_STACKS):
            if stack:
                layers.append(nn.MaxPool2d(2, 2))
                cout *= 2
            for _ in range(CELLS_PER_STACK):
                layers.append(Cell(matrix, ops, cin, cout))
                cin = cout
        self.layers = nn.Sequential(*layers)
        self.classifier = nn.Linear(cout, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.layers(x).mean((2, 3)))


def build(arch: str, num_classes: int) -> nn.Module:
    return NB101Net(*_pruned_spec(arch), num_classes)
