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
                            "groups": module.groups, "out_hw": [oh, ow], "macs": macs,
                            "bias": module.bias is not None})
        else:
            records.append({"name": name, "type": "Linear", "in_channels": module.in_features,
                            "out_channels": module.out_features, "kernel": [1, 1], "stride": [1, 1],
                            "dilation": [1, 1], "groups": 1, "out_hw": [1, 1],
                            "macs": module.in_features * module.out_features, "bias": module.bias is not None})

    handles = [m.register_forward_hook(functools.partial(hook, name=n))
               for n, m in net.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    _hooked_eval_forward(net, input_shape, handles)
    return records


def _hooked_eval_forward(net: nn.Module, input_shape, handles) -> None:
    """One no-grad eval-mode forward on zeros (on the net's device, ``meta`` included);
    then restore the mode and drop the hooks."""
    param = next(net.parameters(), None)
    device, dtype = (param.device, param.dtype) if param is not None else (torch.device("cpu"), torch.float32)
    was_training = net.training
    try:
        net.eval()
        with torch.no_grad():
            net(torch.zeros(*input_shape, device=device, dtype=dtype))
    finally:
        net.train(was_training)
        for h in handles:
            h.remove()


def naslib_flops(net: nn.Module, input_shape: tuple[int, ...], bn_after_pools: bool = False) -> int:
    """FLOPs as NAS-Bench-Suite-Zero (NASLib, ``tensorwatch.ModelStats``) counts them.

    One forward pass in eval mode; every executed leaf module adds:
    Conv2d ``kh*kw*C_in*C_out/groups*H_out*W_out`` (+ ``C_out*H_out*W_out`` with
    bias; dilation does not count), BatchNorm2d ``numel(input)`` (doubled when
    affine), ReLU ``numel(input)``, AvgPool2d/MaxPool2d ``numel(output)*k*k``,
    AdaptiveAvgPool2d torchstat's ``C*(h_span+1)*(w_span+1)`` per output cell,
    Linear ``in*out``; everything else nothing. ``bn_after_pools`` adds the
    non-affine BatchNorm NASLib's NB301 graph puts after every pooling op.
    """
    total = [0]

    def hook(module, inputs, output):
        x = inputs[0]
        if isinstance(module, nn.Conv2d):
            kh, kw = module.kernel_size
            out_hw = output.shape[2] * output.shape[3]
            total[0] += kh * kw * module.in_channels * module.out_channels // module.groups * out_hw
            total[0] += module.out_channels * out_hw if module.bias is not None else 0
        elif isinstance(module, nn.BatchNorm2d):
            total[0] += x.numel() * (2 if module.affine else 1)
        elif isinstance(module, nn.ReLU):
            total[0] += x.numel()
        elif isinstance(module, (nn.AvgPool2d, nn.MaxPool2d)):
            k = module.kernel_size if isinstance(module.kernel_size, int) else module.kernel_size[0]
            total[0] += output.numel() * k * k + (output.numel() if bn_after_pools else 0)
        elif isinstance(module, nn.AdaptiveAvgPool2d):
            (h, w), (oh, ow) = x.shape[2:], output.shape[2:]
            spans = 0
            for i in range(oh):
                span_h = -(-(i + 1) * h // oh) - (i * h // oh)
                for j in range(ow):
                    span_w = -(-(j + 1) * w // ow) - (j * w // ow)
                    spans += (span_h + 1) * (span_w + 1)
            total[0] += x.shape[1] * spans
        elif isinstance(module, nn.Linear):
            total[0] += module.in_features * module.out_features
        return None

    handles = [m.register_forward_hook(hook) for m in net.modules() if next(m.children(), None) is None]
    _hooked_eval_forward(net, input_shape, handles)
    return total[0] // int(input_shape[0])


def describe_network(net: nn.Module, input_shape: tuple[int, ...], bn_after_pools: bool = False,
                     **header) -> dict:
    """The ``describe`` dict every space returns: header fields, params, FLOPs, MACs, weight layers.

    ``flops`` follows NAS-Bench-Suite-Zero's convention (``naslib_flops``), as
    ``nb201.describe`` does; ``macs`` counts conv/linear multiply-accumulates only.
    """
    layers = weight_layers(net, input_shape)
    return {**header, "params": count_params(net),
            "flops": naslib_flops(net, input_shape, bn_after_pools=bn_after_pools),
            "macs": sum(L["macs"] for L in layers), "input_shape": list(input_shape),
            "n_layers": len(layers), "layers": layers}


def legacy_normalisation(num_classes: int) -> str:
    """What caches of the NDS / TNB101 spaces were built with when the class count chose
    the normalisation; kept so that their numbers do not move."""
    return {120: "imagenet16", 100: "cifar100"}.get(num_classes, "cifar10")
