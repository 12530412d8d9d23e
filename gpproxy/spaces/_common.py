"""Small helpers shared by the search-space modules (not part of the public API)."""
from __future__ import annotations

import functools
import hashlib
import json

import torch
from torch import nn


def show(value: object, limit: int = 120) -> str:
    """repr() of a bad input, kept on one line and short enough for a CLI error."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def compact_json(obj) -> str:
    """The canonical text of a JSON-able config: sorted keys, no spaces."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)


def short_hash(text: str, prefix: str = "", length: int = 16) -> str:
    """A file-safe id for a (long) canonical arch string."""
    digest = hashlib.sha1(text.encode("utf-8")).hexdigest()[:length]
    return f"{prefix}-{digest}" if prefix else digest


def count_params(net: nn.Module) -> int:
    """All parameters, trainable or not."""
    return sum(p.numel() for p in net.parameters())


def weight_layers(net: nn.Module, input_shape: tuple[int, ...]) -> list[dict]:
    """Conv2d/Linear layers in execution order, with shapes from one batch-1 forward pass.

    ``macs`` is the multiply-accumulate count of the layer for one image
    (``kh*kw*C_in/groups*C_out*H_out*W_out`` for a conv, ``in*out`` for a linear layer).
    Layers that never run (there are none in the spaces here) are not listed.
    """
    records: list[dict] = []

    def hook(module, inputs, output, name):
        if isinstance(module, nn.Conv2d):
            kh, kw = module.kernel_size
            oh, ow = int(output.shape[2]), int(output.shape[3])
            macs = kh * kw * module.in_channels // module.groups * module.out_channels * oh * ow
            records.append({"name": name, "type": "Conv2d", "in_channels": module.in_channels,
                            "out_channels": module.out_channels, "kernel": [kh, kw],
                            "stride": list(module.stride), "dilation": list(module.dilation),
                            "groups": module.groups, "out_hw": [oh, ow], "macs": macs})
        else:
            records.append({"name": name, "type": "Linear", "in_channels": module.in_features,
                            "out_channels": module.out_features, "kernel": [1, 1], "stride": [1, 1],
                            "dilation": [1, 1], "groups": 1, "out_hw": [1, 1],
                            "macs": module.in_features * module.out_features})

    handles = [m.register_forward_hook(functools.partial(hook, name=n))
               for n, m in net.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    was_training = net.training
    try:
        net.eval()
        with torch.no_grad():
            net(torch.zeros(*input_shape))
    finally:
        net.train(was_training)
        for h in handles:
            h.remove()
    return records


def describe_network(net: nn.Module, input_shape: tuple[int, ...], **header) -> dict:
    """The ``describe`` dict every space returns: header fields, params, MACs, weight layers."""
    layers = weight_layers(net, input_shape)
    return {**header, "params": count_params(net), "flops": sum(L["macs"] for L in layers),
            "flops_convention": "conv+linear multiply-accumulates, batch 1",
            "input_shape": list(input_shape), "n_layers": len(layers), "layers": layers}
