#!/usr/bin/python3
"""export_torch.py - convert an fsbench checkpoint (.fsbt) back into a PyTorch state_dict.

Reads meta arch / widths / n_class (and flatten / in_hw: a ConvNet-4 whose embedding is the
flattened last map), builds the reference module of tools/torch_models.py,
loads exactly its state_dict entries (strictly: every one must be present with its shape;
other tensors in the file, e.g. optimiser state or test vectors, are ignored) and saves.

Usage: /usr/bin/python3 tools/export_torch.py teacher.fsbt out.pth [--layout fsbench|feat]
  fsbench: a bare state_dict with keys encoder.* / fc.* (default)
  feat:    {'params': state_dict} with FEAT's key names (ConvNet-4: encoder.encoder.N...),
           loadable the way FEAT loads con-pre.pth / Res12-pre.pth
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch  # noqa: E402

import fsbt  # noqa: E402
import torch_models as tm  # noqa: E402


def to_model(path):
    """(model, meta) built and loaded from the fsbench checkpoint at path."""
    meta, tensors = fsbt.read(path)
    for k in ("arch", "widths", "n_class"):
        if k not in meta:
            raise ValueError(f"{path}: not an fsbench checkpoint (no '{k}' metadata)")
    widths = [int(w) for w in meta["widths"].split(",")]
    flatten = meta.get("flatten") == "1"
    model = tm.build(meta["arch"], widths, int(meta["n_class"]), flatten=flatten,
                     in_hw=int(meta.get("in_hw") or 84))
    sd = model.state_dict()
    missing = [k for k in sd if k not in tensors]
    if missing:
        raise ValueError(f"{path}: missing tensors for {meta['arch']}: {', '.join(missing[:8])}")
    new = {}
    for k, r in sd.items():
        t = torch.from_numpy(tensors[k])
        if tuple(t.shape) != tuple(r.shape):
            raise ValueError(f"{path}: {k} has shape {list(t.shape)}, expected {list(r.shape)}")
        new[k] = t
    model.load_state_dict(new, strict=True)
    return model, meta


def export(path, layout="fsbench"):
    model, meta = to_model(path)
    sd = model.state_dict()
    if layout == "feat":
        if meta["arch"] == "conv4":
            sd = {("encoder." + k if k.startswith("encoder.") else k): v for k, v in sd.items()}
        return {"params": sd}
    return sd


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("input", help="fsbench checkpoint (.fsbt)")
    ap.add_argument("output", help="PyTorch file to write (.pth)")
    ap.add_argument("--layout", choices=("fsbench", "feat"), default="fsbench")
    a = ap.parse_args()
    try:
        obj = export(a.input, a.layout)
    except (ValueError, OSError) as e:
        print(f"export_torch: {e}", file=sys.stderr)
        return 1
    tmp = a.output + ".tmp"
    torch.save(obj, tmp)
    os.replace(tmp, a.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
