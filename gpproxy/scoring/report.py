"""Rendering ``gpproxy bench`` tables: the protocol header, Markdown and CSV."""
from __future__ import annotations

from .metrics import METRICS, meaningful
from .protocol import Protocol
from .truth import Truth


def _init_text(space: str) -> str:
    """How the space's builder initialises a net (after torch.manual_seed)."""
    from ..spaces import get_space

    return get_space(space).init_text


def input_lines(truth: Truth, protocol: Protocol) -> list:
    """What minibatch each dataset's nets see, stated against what the benchmark trained on."""
    from ..cache import _normalisation

    noise = protocol.input == "noise"
    lines = ["input: noise: N(0, 1) images and uniform random labels, no real images" if noise else
             f"input: {protocol.input}; the same images for every dataset, area-resized to each net's input "
             f"size when theirs differs, labels folded into the class count"]
    for name, (ds, col, lookup) in truth.columns.items():
        res = protocol.resolution_for(ds)
        norm = "" if noise else f", normalised with {_normalisation(protocol.cache_spec(ds))} mean/std"
        if not ds.images:
            if not noise:
                lines.append(f"{ds.name} nets see them at {res}x{res}{norm}")
            continue
        trained = f"{ds.name}: the benchmark trained on {ds.images}; here its nets see "
        lines.append(trained + ("noise" if noise else "these images") + f" at {res}x{res}{norm}")
    if "imagenet16_120" in truth.columns and not noise:
        r = protocol.resolution_for(truth.columns["imagenet16_120"][0])
        lines.append("ImageNet16-120 images are not available here: its nets see the input images "
                     f"area-{'downsampled' if r < 32 else 'resized'} to {r}x{r} with ImageNet16-120 normalisation")
    if "cifar100" in truth.columns and "cifar10" in protocol.input.lower():
        lines.append("CIFAR-100 nets see CIFAR-10 images (labels 0-9 of 100 classes)")
    return lines


def bench_header(truth: Truth, protocol: Protocol, archs, trials, command: str, seconds: float) -> list:
    """Protocol lines for the top of the Markdown table (and '#' lines of the CSV)."""
    lines = [f"space: {protocol.space}; ground truth: {truth.source}"]
    for name, (ds, col, lookup) in truth.columns.items():
        what = ds.label if col in (ds.target,) + ds.alt_targets else f"chosen with --target; default `{ds.target}`"
        res = protocol.resolution_for(ds)
        lines.append(f"{ds.name}: column `{col}` ({what}); net with {ds.num_classes} classes, "
                     f"{res}x{res} input" + ("" if res == ds.resolution else
                                            f" (--resolution; the benchmark's is {ds.resolution}x{ds.resolution})"))
    if archs == "all" or archs is None:
        lines.append("archs: all archs with a ground-truth value, one trial")
    elif isinstance(archs, (list, tuple)):
        lines.append(f"archs: {len(archs)} given archs, one trial")
    elif trials == 1:
        lines.append(f"archs: {archs} random archs drawn with numpy default_rng(seed), one trial")
    else:
        lines.append(f"archs: {archs} random archs x {trials} trials (trial t draws with "
                     f"numpy default_rng(seed + t)); mean ± std over trials")
    if protocol.per_arch_seed:
        lines.append(f"batch {protocol.batch}; a fresh seed per arch (crc32 of the arch mixed with seed "
                     f"{protocol.seed}) for its init and its minibatch, as NASLib's runner; BatchNorm in "
                     f"training mode; cross-entropy loss")
    else:
        lines.append(f"batch {protocol.batch}; seed {protocol.seed} (torch.manual_seed before building each "
                     f"net: {_init_text(protocol.space)}; same seed draws the minibatch); BatchNorm in training "
                     f"mode; cross-entropy loss")
    lines.extend(input_lines(truth, protocol))
    lines.append(f"formula strings: statistics cache of pack {protocol.pack!r} with default sampling "
                 f"(gpproxy.probe.ProbeConfig), evaluated as the engine does")
    lines.append("non-finite scores count as -1e8 (NASLib's rule); 'inv' = archs with such a score")
    lines.extend(f"note: {n}" for n in truth.notes)
    if command:
        lines.append(f"command: `{command}`")
    lines.append(f"wall time of this command: {seconds:.0f} s")
    return lines


def _fmt(mean_std, trials) -> str:
    m, s = mean_std
    return f"{m:.3f}" if trials <= 1 else f"{m:.3f} ± {s:.3f}"


def bench_tables(results: dict, proxies: list, truth: Truth, header: list):
    cols = list(results)
    # the Markdown shows top-k columns only where k is meaningful for the number of archs
    shown = [m for m in METRICS if all(meaningful(m, results[c]["_meta"]["archs"]) for c in cols)]
    names = {"kendall": "τ", "spearman": "ρ", "top10pct": "P@10%", "top50": "P@50"}
    md = [f"# Zero-cost proxies on {truth.space}", ""] + [f"- {h}" for h in header] + [""]
    head = ["proxy"]
    for c in cols:
        short = truth.columns[c][0].name
        head += [f"{short} {names[m]}" for m in shown]
    head.append("s/arch")
    md.append("| " + " | ".join(head) + " |")
    md.append("|" + "---|" * len(head))
    csv = [f"# {h}" for h in header]
    csv.append("proxy,kind,dataset,target,archs,trials,invalid,kendall_mean,kendall_std,spearman_mean,"
               "spearman_std,top10pct_mean,top10pct_std,top50_mean,top50_std,seconds_per_arch")
    for p in proxies:
        row, secs = [f"`{p.name}`" if p.kind == "formula" else p.name], 0.0
        for c in cols:
            r, meta = results[c][p.name], results[c]["_meta"]
            row += [_fmt(r[m], r["trials"]) for m in shown]
            if r["invalid"]:
                row[-len(shown)] += f" ({r['invalid']} inv)"
            secs += meta["seconds_per_arch"][p.name]
            csv.append(",".join([_csv_cell(p.name), p.kind, c, meta["target"], str(meta["archs"]),
                                 str(meta["trials"]), str(r["invalid"])]
                                + [f"{v:.6f}" for m in METRICS for v in r[m]]
                                + [f"{meta['seconds_per_arch'][p.name]:.4f}"]))
        row.append(f"{secs:.2f}")
        md.append("| " + " | ".join(row) + " |")
    md += ["", "τ: Kendall, ρ: Spearman, P@10%/P@50: share of the true top-10% / top-50 archs among the "
           "proxy's top-10% / top-50; s/arch: mean seconds per arch summed over the datasets "
           "(1 CPU thread; shared passes split evenly among the proxies that share them)."]
    return "\n".join(md) + "\n", "\n".join(csv) + "\n"


def _csv_cell(text: str) -> str:
    return '"' + text.replace('"', '""') + '"' if ("," in text or '"' in text) else text
