#!/usr/bin/python3
"""import_torch.py - convert a PyTorch ConvNet-4 / ResNet-12 state_dict (.pth) into an
fsbench checkpoint (.fsbt, docs/formats.md).

Accepts a bare state_dict, or a dict holding it under 'params' (FEAT's con-pre.pth,
Res12-pre.pth), 'state_dict' or 'model'; keys may carry any number of 'module.' prefixes;
FEAT's ConvNet keys 'encoder.encoder.N...' become 'encoder.N...', and a bare encoder's keys
('N.0.weight', 'layer1...') get 'encoder.'. The architecture and widths are detected from
the keys and shapes and every tensor is checked against the reference module in
tools/torch_models.py; anything else is refused with a message. Keys outside encoder.*/fc.*
(e.g. FEAT's slf_attn.*) are dropped with a note on stderr (--strict refuses them).

Usage: /usr/bin/python3 tools/import_torch.py con-pre.pth teacher.fsbt [--strict]
Meta written: format=fsbench-checkpoint, arch=conv4|res12, widths, n_class (0 = no fc),
embed_dim, source (the input file name).
"""
import argparse
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch  # noqa: E402

import fsbt  # noqa: E402
import torch_models as tm  # noqa: E402


class ImportError_(ValueError):
    pass


def unwrap(obj, label):
    """The state_dict inside whatever torch.load returned."""
    if hasattr(obj, "state_dict") and callable(obj.state_dict):
        obj = obj.state_dict()
    if isinstance(obj, dict):
        for key in ("params", "state_dict", "model"):
            if key in obj and isinstance(obj[key], dict):
                return unwrap(obj[key], label)
        if obj and all(torch.is_tensor(v) for v in obj.values()):
            return obj
    raise ImportError_(f"{label}: no state_dict found (expected a dict of tensors, or one "
                       "under 'params' / 'state_dict' / 'model')")


def canonical_key(k):
    while k.startswith("module."):
        k = k[len("module."):]
    if k.startswith("encoder.encoder."):  # FEAT's ConvNet inside its Classifier/FEAT model
        k = k[len("encoder."):]
    if re.match(r"^(\d+\.|layer\d+\.)", k):  # a bare encoder
        k = "encoder." + k
    return k


def detect(sd, label):
    """(arch, widths, n_class) from canonical keys and shapes."""
    if all(f"encoder.{b}.0.weight" in sd for b in range(4)):
        arch = "conv4"
        widths = [int(sd[f"encoder.{b}.0.weight"].shape[0]) for b in range(4)]
    elif all(f"encoder.layer{l}.0.conv1.weight" in sd for l in range(1, 5)):
        arch = "res12"
        widths = [int(sd[f"encoder.layer{l}.0.conv1.weight"].shape[0]) for l in range(1, 5)]
    else:
        some = ", ".join(list(sd)[:6])
        raise ImportError_(
            f"{label}: unrecognised layout: expected ConvNet-4 keys (encoder.0.0.weight ... "
            f"encoder.3.1.running_var) or ResNet-12 keys (encoder.layer1.0.conv1.weight ...); "
            f"found: {some}{' ...' if len(sd) > 6 else ''}")
    n_class = 0
    if "fc.weight" in sd:
        w = sd["fc.weight"]
        if w.dim() != 2 or w.shape[1] != widths[-1]:
            raise ImportError_(f"{label}: fc.weight has shape {list(w.shape)}, expected "
                               f"[n_class, {widths[-1]}]")
        n_class = int(w.shape[0])
    return arch, widths, n_class


def convert(path, strict=False, log=sys.stderr):
    """(meta, tensors) of the fsbench checkpoint for the .pth at path."""
    label = os.path.basename(path)
    raw = unwrap(torch.load(path, map_location="cpu"), label)
    sd = {}
    for k, v in raw.items():
        ck = canonical_key(k)
        if ck in sd:
            raise ImportError_(f"{label}: keys collide after normalisation: {ck}")
        sd[ck] = v
    arch, widths, n_class = detect(sd, label)
    ref = tm.build(arch, widths, n_class).state_dict()
    extra = [k for k in sd if k not in ref]
    if extra:
        ours = [k for k in extra if k.startswith("encoder.") or k.startswith("fc.")]
        if ours or strict:
            raise ImportError_(f"{label}: unexpected keys for {arch} widths "
                               f"{','.join(map(str, widths))}: {', '.join((ours or extra)[:8])}")
        prefixes = sorted({k.split(".")[0] for k in extra})
        print(f"{label}: dropping {len(extra)} tensors outside encoder/fc "
              f"({', '.join(prefixes)})", file=log)
    tensors = {}
    for k, r in ref.items():
        if k not in sd:
            if k.endswith("num_batches_tracked"):  # checkpoints older than torch 0.4.1
                tensors[k] = torch.zeros((), dtype=torch.int64)
                continue
            raise ImportError_(f"{label}: missing tensor {k} for {arch}")
        v = sd[k].detach().cpu()
        if tuple(v.shape) != tuple(r.shape):
            raise ImportError_(f"{label}: {k} has shape {list(v.shape)}, {arch} widths "
                               f"{','.join(map(str, widths))} needs {list(r.shape)}")
        if r.dtype == torch.int64:
            v = v.to(torch.int64)
        elif not v.is_floating_point():
            raise ImportError_(f"{label}: {k} has dtype {v.dtype}, expected floating point")
        else:
            v = v.to(torch.float32)
        tensors[k] = v.contiguous().numpy()
    meta = {
        "format": "fsbench-checkpoint",
        "arch": arch,
        "widths": ",".join(map(str, widths)),
        "n_class": str(n_class),
        "embed_dim": str(widths[-1]),
        "source": label,
    }
    return meta, tensors


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("input", help="PyTorch .pth (state_dict or FEAT checkpoint)")
    ap.add_argument("output", help="fsbench checkpoint to write (.fsbt)")
    ap.add_argument("--strict", action="store_true", help="refuse keys outside encoder/fc")
    a = ap.parse_args()
    try:
        meta, tensors = convert(a.input, a.strict)
    except ImportError_ as e:
        print(f"import_torch: {e}", file=sys.stderr)
        return 1
    fsbt.write(a.output, meta, tensors)
    print(f"{a.output}: {meta['arch']} widths {meta['widths']} n_class {meta['n_class']}, "
          f"{len(tensors)} tensors", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
