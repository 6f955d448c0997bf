#!/usr/bin/python3
"""import_torch.py - convert a PyTorch ConvNet-4 / ResNet-12 checkpoint (.pth, .tar) into an
fsbench checkpoint (.fsbt, docs/formats.md).

Usage:
  /usr/bin/python3 tools/import_torch.py IN.pth OUT.fsbt [--from LIB] [--embedding E]
        [--slope S] [--in-hw N] [--head NAME|none] [--strict]
  /usr/bin/python3 tools/import_torch.py --selftest

Reads the checkpoints of FEAT, CloserLook, SimpleShot, RFS, LibFewShot and easyfsl (and
fsbench's own tools/export_torch.py output):
  - the state_dict is found bare or under 'params' (FEAT), 'state' (CloserLook), 'state_dict'
    (SimpleShot), 'model' (RFS, LibFewShot's *_last.pth) or 'model_state_dict'; every
    'module' part of a key (nn.DataParallel) is dropped;
  - the backbone is found BY STRUCTURE, not by key names: the conv weights (4-d tensors) in
    state_dict order, each followed by its BatchNorm; aliases (CloserLook keeps each conv and
    BN twice) are merged. Four conv 3x3 + BN units chained 3 -> w1 -> .. -> w4 are a ConvNet-4;
    four blocks of (3x3, 3x3, 3x3 without bias, then a 1x1 shortcut), each + BN, a ResNet-12.
    Anything else is refused with a message saying what was found and how it differs
    (torchvision-style ResNets: easyfsl's resnet12, SimpleShot's / CloserLook's ResNets;
    ConvNets of another depth; a second conv network such as a RelationNet module; tensors
    inside a block that fsbench's block lacks, e.g. RFS's squeeze-excitation; BatchNorm
    without running statistics);
  - the head is a top-level nn.Linear (fc / classifier / logits, ...) whose input size matches
    the embedding (--head picks one, --head none drops it); other tensors (FEAT's slf_attn,
    a baseline++ cosine classifier) are dropped with a note (--strict refuses them).
A state_dict does not record what the forward does between the weights: the activation, the
pooling, how the last map becomes the embedding. These come from the library (--from, guessed
from the key names and the file's wrapper; the guess is printed) and can be overridden with
--embedding (maxpool | avgpool | flatten) and --slope (the LeakyReLU slope; 0 = ReLU):
  feat, fsbench  ConvNet-4: global max pool (64-d). ResNet-12: average pool.
  closerlook     Conv4: the flattened 64x5x5 map (1600-d; meta flatten=1).
  simpleshot     conv4: the flattened map (1600-d).
  libfewshot     Conv64F: the flattened map (is_flatten); ReLU (its leaky_relu=True option is
                 LeakyReLU(0.2): say --slope 0.2 and it is refused). resnet12: average pool.
  rfs            resnet12 (avg_pool=True): average pool. Its ConvNet is REFUSED: no max pool
                 after block 4 and a global average pool of the 10x10 map.
  easyfsl        feat_resnet12: average pool (mean). resnet12 is refused (torchvision-style).
fsbench's engine runs ConvNet-4 = 4 x (conv 3x3 + bias, BN, ReLU, max pool 2) with a global
max pool or the flattened last map, and ResNet-12 = FEAT's (LeakyReLU 0.1, average pool);
a different slope, an average-pooled ConvNet-4 or a flattened ResNet-12 is refused. A
bias-free conv (the engine's ConvNet-4 has one) gets a zero bias; a BN without affine
parameters gets weight 1, bias 0; BatchNorm's eps is PyTorch's default 1e-5 everywhere (a
state_dict does not store it). A head's input size also tells the embedding: [n, 64] is
pooled, [n, 1600] flattened at 84 px (at another size: --in-hw, e.g. 32 for CIFAR-FS, where
it is 64x2x2 = 256).

Not visible in the weights, so taken on trust from --from: strides and padding (CloserLook's
Conv4NP for RelationNet has the very shapes of its Conv4), LibFewShot's last_pool /
maxpool_last2 = False and its resnet12woLSC (no residual in block 4), dropout settings. An
fsbench export of a flattened ConvNet-4 without head needs --embedding flatten.

Every converted model is loaded strictly into the reference module of tools/torch_models.py
before anything is written. --selftest rebuilds each supported layout as a small random torch
module (tools/torch_models.py reproduces each library's module structure and forward), saves
it the way that library saves it, converts it and compares the library module's embedding
(and logits) with the reference module's, loaded from the written .fsbt, to 1e-5; it also
checks that the refused variants are refused.

Meta written: format=fsbench-checkpoint, arch=conv4|res12, widths, n_class (0 = no fc),
embed_dim, source (the input file name), and flatten=1 + in_hw for a flattened ConvNet-4
(in_hw also when --in-hw is given).
"""
import argparse
import math
import os
import re
import sys
from collections import OrderedDict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch  # noqa: E402

import fsbt  # noqa: E402
import torch_models as tm  # noqa: E402


class ImportError_(ValueError):
    pass


# What each library's forward does that its state_dict does not say (see the docstring and
# tools/torch_models.py for the sources). `unpooled_last`: no max pool after the last block.
LIBRARIES = OrderedDict([
    ("feat", dict(title="FEAT (Sha-Lab/FEAT) or fsbench's own export",
                  conv4=dict(embedding="maxpool", slope=0.0),
                  res12=dict(embedding="avgpool", slope=0.1))),
    ("fsbench", dict(title="fsbench (tools/export_torch.py)",
                     conv4=dict(embedding="maxpool", slope=0.0),
                     res12=dict(embedding="avgpool", slope=0.1))),
    ("closerlook", dict(title="CloserLook (wyharveychen/CloserLookFewShot)",
                        conv4=dict(embedding="flatten", slope=0.0), res12=None)),
    ("simpleshot", dict(title="SimpleShot (mileyan/simple_shot)",
                        conv4=dict(embedding="flatten", slope=0.0), res12=None)),
    ("rfs", dict(title="RFS (WangYueFt/rfs)",
                 conv4=dict(embedding="avgpool", slope=0.0, unpooled_last=True),
                 res12=dict(embedding="avgpool", slope=0.1))),
    ("libfewshot", dict(title="LibFewShot (RL-VIG/LibFewShot)",
                        conv4=dict(embedding="flatten", slope=0.0),
                        res12=dict(embedding="avgpool", slope=0.1))),
    ("easyfsl", dict(title="easyfsl (sicara/easy-few-shot-learning)", conv4=None,
                     res12=dict(embedding="avgpool", slope=0.1))),
])
WRAPPERS = ("params", "state", "state_dict", "model", "model_state_dict")
HEAD_NAMES = ("fc", "classifier", "logits", "cls_classifier", "linear", "head")


# ---- reading ---------------------------------------------------------------------------------

def unwrap(obj, label):
    """(state_dict, wrapper key or '', the outer dict's keys) of what torch.load returned."""
    if hasattr(obj, "state_dict") and callable(obj.state_dict):
        return unwrap(obj.state_dict(), label)
    if isinstance(obj, dict):
        for key in WRAPPERS:
            if key in obj and isinstance(obj[key], dict):
                sd, _, _ = unwrap(obj[key], label)
                return sd, key, sorted(map(str, obj))
        if obj and all(torch.is_tensor(v) for v in obj.values()):
            return obj, "", []
    raise ImportError_(f"{label}: no state_dict found (expected a dict of tensors, or one under "
                       f"{' / '.join(repr(w) for w in WRAPPERS)})")


def load_state_dict(path):
    label = os.path.basename(path)
    try:
        obj = torch.load(path, map_location="cpu")
    except (AttributeError, ModuleNotFoundError) as e:
        raise ImportError_(f"{label}: the file pickles objects whose classes are not importable "
                           f"here ({e}); save the model's state_dict() instead") from None
    except Exception as e:  # corrupt or not a torch file
        raise ImportError_(f"{label}: torch.load failed: {e}") from None
    raw, wrapper, outer = unwrap(obj, label)
    sd = OrderedDict()
    for k, v in raw.items():
        ck = ".".join(p for p in str(k).split(".") if p != "module")  # nn.DataParallel
        if ck in sd:
            raise ImportError_(f"{label}: keys collide once 'module.' is dropped: {ck}")
        sd[ck] = v
    return sd, wrapper, outer


# ---- structure -------------------------------------------------------------------------------

def modules_of(sd):
    """OrderedDict module path -> OrderedDict leaf name -> tensor, in state_dict order."""
    groups = OrderedDict()
    for k, v in sd.items():
        prefix, _, leaf = k.rpartition(".")
        groups.setdefault(prefix, OrderedDict())[leaf] = v
    return groups


def is_conv(g):
    w = g.get("weight")
    return (w is not None and w.dim() == 4 and set(g) <= {"weight", "bias"}
            and ("bias" not in g or tuple(g["bias"].shape) == (w.shape[0],)))


BN_LEAVES = {"weight", "bias", "running_mean", "running_var", "num_batches_tracked"}


def is_bn(g, c):
    if not ({"running_mean", "running_var"} <= set(g) <= BN_LEAVES):
        return False
    return all(v.dim() == 1 and v.shape[0] == c for k, v in g.items() if k != "num_batches_tracked")


def is_affine_only(g, c):  # a BN built with track_running_stats=False (or a LayerNorm-like pair)
    return set(g) == {"weight", "bias"} and all(v.dim() == 1 and v.shape[0] == c
                                                for v in g.values())


def is_linear(g):
    w = g.get("weight")
    return (w is not None and w.dim() == 2 and set(g) <= {"weight", "bias"}
            and ("bias" not in g or tuple(g["bias"].shape) == (w.shape[0],)))


class Unit:
    """A conv and the BatchNorm after it."""

    def __init__(self, cprefix, conv, bprefix, bn, bn_kind):
        self.cprefix, self.conv, self.bprefix, self.bn = cprefix, conv, bprefix, bn
        self.bn_kind = bn_kind
        w = conv["weight"]
        self.cout, self.cin, self.k = int(w.shape[0]), int(w.shape[1]), int(w.shape[2])
        self.square = w.shape[2] == w.shape[3]
        self.aliases = []

    def prefixes(self):
        out = [self.cprefix] + ([self.bprefix] if self.bprefix is not None else [])
        for a in self.aliases:
            out += a.prefixes()
        return out

    def same_values(self, other):
        def eq(a, b):
            return (a is not None and b is not None and list(a) == list(b)
                    and all(a[k].shape == b[k].shape and torch.equal(a[k], b[k]) for k in a))
        return eq(self.conv, other.conv) and (self.bn is other.bn is None or eq(self.bn, other.bn))

    def text(self):
        return f"{self.cprefix} ({self.k}x{self.k} {self.cin}->{self.cout})"


def find_units(groups):
    """Every conv in state_dict order with the BN right after it; aliases merged."""
    names = list(groups)
    units = []
    for i, p in enumerate(names):
        g = groups[p]
        if not is_conv(g):
            continue
        c = int(g["weight"].shape[0])
        nxt = names[i + 1] if i + 1 < len(names) else None
        if nxt is not None and is_bn(groups[nxt], c):
            u = Unit(p, g, nxt, groups[nxt], "bn")
        elif nxt is not None and is_affine_only(groups[nxt], c):
            u = Unit(p, g, nxt, groups[nxt], "no-stats")
        else:
            u = Unit(p, g, None, None, None)
        for v in units:
            if u.same_values(v):  # the same module under a second name (CloserLook's trunk)
                v.aliases.append(u)
                break
        else:
            units.append(u)
    return units


def common_prefix(paths):
    parts = [p.split(".") for p in paths]
    out = []
    for level in zip(*parts):
        if len(set(level)) != 1:
            break
        out.append(level[0])
    return ".".join(out)


def match_conv4(units):
    if len(units) < 4:
        return False
    chain = [3] + [u.cout for u in units[:4]]
    return all(u.k == 3 and u.square and u.cin == chain[i] for i, u in enumerate(units[:4]))


def match_res12(units):
    if len(units) < 16:
        return False
    cin = 3
    for b in range(4):
        u1, u2, u3, ds = units[4 * b: 4 * b + 4]
        w = u1.cout
        if not (u1.k == u2.k == u3.k == 3 and ds.k == 1 and u1.cin == cin and ds.cin == cin
                and u2.cin == u3.cin == w and u2.cout == u3.cout == ds.cout == w):
            return False
        cin = w
    return True


def torchvision_blocks(units, cin):
    """Number of torchvision BasicBlocks (3x3, 3x3, optional 1x1 shortcut) that units are, or 0."""
    i, n = 0, 0
    while i < len(units):
        if i + 1 >= len(units):
            return 0
        a, b = units[i], units[i + 1]
        if not (a.k == 3 and b.k == 3 and a.cin == cin and b.cin == b.cout == a.cout):
            return 0
        i += 2
        if i < len(units) and units[i].k == 1 and units[i].cin == cin and units[i].cout == a.cout:
            i += 1
        cin, n = a.cout, n + 1
    return n


def describe_failure(units, label):
    if not units:
        return f"{label}: no convolution weights (4-d tensors) found"
    shown = ", ".join(u.text() for u in units[:8]) + (" ..." if len(units) > 8 else "")
    hint = ""
    first = units[0]
    chain = all(u.k == 3 and u.cin == (3 if i == 0 else units[i - 1].cout)
                for i, u in enumerate(units))
    if first.k == 7:
        hint = ("a 7x7 stem conv: an ImageNet-style ResNet (CloserLook's ResNet-10/18/34, "
                "torchvision's)")
    elif first.k == 3 and first.cin == 3 and torchvision_blocks(units[1:], first.cout):
        hint = (f"a torchvision-style ResNet: a 3x3 stem conv, then "
                f"{torchvision_blocks(units[1:], first.cout)} blocks of two 3x3 convs (ReLU, "
                "strided convs, no max pools), as easyfsl's resnet12 (layers 1,1,2,1) and "
                "SimpleShot's ResNet-10/18")
    elif chain:
        hint = f"a ConvNet with {len(units)} blocks (e.g. CloserLook's Conv6)"
    elif match_conv4(units) or match_res12(units):
        n = 16 if match_res12(units) else 4
        roots = sorted({u.cprefix.split(".")[0] for u in units[n:]})
        hint = (f"a {'ConvNet-4' if n == 4 else 'ResNet-12'} followed by {len(units) - n} more "
                f"conv layers under {', '.join(roots)}: a second convolutional module, e.g. "
                "RelationNet's relation module (RelationNet backbones - CloserLook's Conv4NP, "
                "LibFewShot's Conv64F without its last pools - differ from fsbench's ConvNet-4)")
    elif first.cin != 3:
        hint = f"a network on {first.cin}-channel input (fsbench feeds 3: grey is replicated)"
    return (f"{label}: not a network fsbench runs: found {len(units)} conv layers: {shown}"
            + (f"; this is {hint}" if hint else "")
            + ". fsbench runs ConvNet-4 (4 x conv 3x3 + BN, channels 3 -> w1 -> .. -> w4) and "
              "ResNet-12 (4 blocks of three 3x3 convs without bias + a 1x1 shortcut, each "
              "with BN; LeakyReLU 0.1, max pool)")


# ---- the library and its forward --------------------------------------------------------------

def guess_library(arch, units, wrapper, outer, head_in, widths):
    first = units[0].cprefix
    allp = [p for u in units for p in u.prefixes()]
    if any(re.search(r"(^|\.)trunk\.\d+\.(C|BN|trunk\.\d+)$", p) for p in allp):
        return "closerlook", "CloserLook's ConvBlock names (trunk.N.C / .BN, each kept twice)"
    if first.startswith("emb_func."):
        return "libfewshot", "the backbone is LibFewShot's 'emb_func'"
    if first.startswith("backbone."):
        return "easyfsl", "the backbone is easyfsl's 'backbone'"
    if wrapper == "params" or first.startswith("encoder."):
        return "feat", "FEAT's 'encoder' / {'params': ...}"
    if "opt" in outer and wrapper == "model":
        return "rfs", "RFS's {'opt': ..., 'model': ...}"
    if arch == "conv4":
        if first == "conv1.0":
            return "simpleshot", "SimpleShot's conv1..conv4 blocks"
        if first == "layer1.0":
            if head_in is not None and head_in == widths[-1]:
                return "rfs", "layer1..layer4 blocks with a head on the pooled 64-d embedding"
            return "libfewshot", "layer1..layer4 blocks (LibFewShot's Conv64F, emb_func_best.pth)"
    return "feat", "the ResNet-12 block names FEAT, RFS, LibFewShot and easyfsl share"


def settle_forward(arch, lib, widths, head_in, in_hw, embedding, slope, label):
    """(flatten, in_hw) for the engine, or ImportError_ naming what fsbench cannot run."""
    info = LIBRARIES[lib]
    sem = info[arch]
    if sem is None:
        raise ImportError_(f"{label}: {info['title']} has no "
                           f"{'ConvNet-4' if arch == 'conv4' else 'ResNet-12'}; this file "
                           f"holds one (choose the right --from)")
    sem = dict(sem)
    if slope is not None:
        sem["slope"] = slope
    given = embedding is not None
    if given:
        sem["embedding"] = embedding
    hw = in_hw or 84
    w4 = widths[-1]
    if arch == "conv4":
        h = hw // 16
        flat = w4 * h * h
        if h < 1:
            raise ImportError_(f"{label}: --in-hw {hw}: a ConvNet-4 needs at least 16 px")
        if head_in is not None and not (head_in == w4 and head_in == flat):
            if head_in == flat:
                if given and embedding != "flatten":
                    raise ImportError_(f"{label}: the head takes {head_in} = {w4}x{h}x{h} inputs "
                                       f"(the flattened map at {hw} px), not the {embedding} "
                                       f"embedding you gave")
                sem["embedding"] = "flatten"
            elif head_in == w4:
                if sem["embedding"] == "flatten":
                    raise ImportError_(
                        f"{label}: the head takes {w4} inputs, a pooled embedding, but "
                        f"{info['title']}'s ConvNet-4 is taken "
                        f"{'as given' if given else 'by default'} as flattened ({flat}-d): say "
                        "how the map was pooled "
                        "(--embedding maxpool; fsbench cannot average-pool a ConvNet-4)")
            else:
                k = math.isqrt(head_in // w4) if head_in % w4 == 0 else 0
                hint = ""
                if k and k * k * w4 == head_in:
                    hint = (f": that is {w4}x{k}x{k}, the flattened map of {16 * k}-{16 * k + 15}"
                            f" px images: pass --in-hw {16 * k} (or the exact size)")
                raise ImportError_(f"{label}: the head takes {head_in} inputs; this ConvNet-4 "
                                   f"gives {w4} (pooled) or {flat} (flattened at {hw} px){hint}")
        problems = []
        if sem.get("unpooled_last"):
            problems.append(f"no max pool after block 4 (its last map is {hw // 8}x{hw // 8} "
                            f"at {hw} px)")
        if sem["embedding"] == "avgpool":
            problems.append("the embedding is a global AVERAGE pool of the last map")
        if sem["slope"] != 0.0:
            problems.append(f"LeakyReLU({sem['slope']:g}) instead of ReLU")
        if problems:
            raise ImportError_(
                f"{label}: ConvNet-4 of {info['title']}: {'; '.join(problems)}. Not "
                "representable: fsbench's ConvNet-4 is 4 x (conv 3x3, BN, ReLU, max pool 2) with "
                "a global max pool or the flattened last map")
        flatten = sem["embedding"] == "flatten"
        return flatten, (hw if (in_hw or flatten) else None)
    # res12
    if head_in is not None and head_in != w4:
        k = math.isqrt(head_in // w4) if head_in % w4 == 0 else 0
        what = (f" = {w4}x{k}x{k}, a flattened map (e.g. RFS with avg_pool=False)"
                if k and k * k * w4 == head_in else "")
        raise ImportError_(f"{label}: the head takes {head_in} inputs{what}; fsbench's ResNet-12 "
                           f"embedding is the {w4}-d global average pool")
    problems = []
    if sem["embedding"] != "avgpool":
        problems.append(f"the embedding is {sem['embedding']}, not a global average pool")
    if abs(sem["slope"] - 0.1) > 1e-12:
        problems.append(f"LeakyReLU({sem['slope']:g}) instead of LeakyReLU(0.1)")
    if problems:
        raise ImportError_(f"{label}: ResNet-12 of {info['title']}: {'; '.join(problems)}. Not "
                           "representable: fsbench's ResNet-12 is FEAT's (LeakyReLU 0.1, global "
                           "average pool)")
    return False, in_hw


# ---- conversion ------------------------------------------------------------------------------

def target_names(arch):
    """fsbench's (conv, bn) module names per unit, in unit order."""
    if arch == "conv4":
        return [(f"encoder.{b}.0", f"encoder.{b}.1") for b in range(4)]
    out = []
    for l in range(1, 5):
        p = f"encoder.layer{l}.0."
        out += [(p + "conv1", p + "bn1"), (p + "conv2", p + "bn2"), (p + "conv3", p + "bn3"),
                (p + "downsample.0", p + "downsample.1")]
    return out


def f32(t):
    if not t.is_floating_point():
        raise ImportError_(f"tensor of dtype {t.dtype}, expected floating point")
    return t.detach().cpu().to(torch.float32).contiguous()


def convert(path, strict=False, log=sys.stderr, source="auto", embedding=None, slope=None,
            in_hw=None, head="auto"):
    """(meta, tensors) of the fsbench checkpoint for the torch checkpoint at path."""
    label = os.path.basename(path)
    sd, wrapper, outer = load_state_dict(path)
    groups = modules_of(sd)
    units = find_units(groups)
    if match_conv4(units) and len(units) == 4:
        arch, n_units = "conv4", 4
    elif match_res12(units) and len(units) == 16:
        arch, n_units = "res12", 16
    else:
        raise ImportError_(describe_failure(units, label))
    widths = [units[i].cout for i in (range(4) if arch == "conv4" else range(0, 16, 4))]
    for u in units:
        if u.bn is None:
            raise ImportError_(f"{label}: conv {u.cprefix} has no BatchNorm after it; fsbench's "
                               "blocks are conv + BN")
        if u.bn_kind == "no-stats":
            raise ImportError_(f"{label}: the BatchNorm {u.bprefix} has no running statistics "
                               "(track_running_stats=False, e.g. LibFewShot's "
                               "use_running_statistics=False or MAML-style backbones): it "
                               "normalises with each batch's statistics at test time, fsbench's "
                               "eval mode uses running mean / var")
        if arch == "res12" and "bias" in u.conv:
            raise ImportError_(f"{label}: conv {u.cprefix} has a bias; fsbench's ResNet-12 convs "
                               "have none")
        if not u.square:
            raise ImportError_(f"{label}: conv {u.cprefix} has a non-square kernel")
    used = {p for u in units for p in u.prefixes()}
    blocks = ([units[i].prefixes() for i in range(4)] if arch == "conv4"
              else [sum((units[4 * b + j].prefixes() for j in range(4)), []) for b in range(4)])
    block_prefixes = [common_prefix(b) for b in blocks]
    root = common_prefix(block_prefixes)
    inside = []
    for p in groups:
        if p in used:
            continue
        for bp in block_prefixes + ([root] if root else []):
            if bp and (p == bp or p.startswith(bp + ".")):
                inside.append(p)
                break
    if inside:
        shown = ", ".join(f"{p}.{next(iter(groups[p]))}" for p in inside[:4])
        se = " (a squeeze-and-excitation layer, as in RFS's seresnet12)" if any(
            re.search(r"(^|\.)se(\.|$)", p) for p in inside) else ""
        raise ImportError_(f"{label}: the {arch} blocks hold tensors that fsbench's block does not "
                           f"have: {shown}{' ...' if len(inside) > 4 else ''}{se}")

    # the head: a top-level linear layer
    linears = [p for p in groups if p and p not in used and "." not in p and is_linear(groups[p])]
    hp = None
    if head == "none":
        hp = None
    elif head != "auto":
        if head not in groups or not is_linear(groups[head]):
            raise ImportError_(f"{label}: --head {head}: no linear layer of that name "
                               f"(top-level linear layers: {', '.join(linears) or 'none'})")
        hp = head
    elif len(linears) == 1:
        hp = linears[0]
    elif len(linears) > 1:
        named = [p for p in linears if p in HEAD_NAMES]
        if len(named) != 1:
            raise ImportError_(f"{label}: several linear layers could be the head "
                               f"({', '.join(linears)}): choose one with --head NAME, or "
                               "--head none")
        hp = named[0]
    head_in = int(groups[hp]["weight"].shape[1]) if hp else None

    if source == "auto":
        lib, why = guess_library(arch, units, wrapper, outer, head_in, widths)
    else:
        lib, why = source, "--from"
    try:
        flatten, meta_hw = settle_forward(arch, lib, widths, head_in, in_hw, embedding, slope,
                                          label)
    except ImportError_ as e:
        if hp and head == "auto" and "the head takes" in str(e):
            raise ImportError_(f"{e} (if '{hp}' is not a classification head over the "
                               "embedding: --head none)") from None
        raise
    n_class = int(groups[hp]["weight"].shape[0]) if hp else 0
    ref_hw = meta_hw or 84
    model = tm.build(arch, widths, n_class, flatten=flatten, in_hw=ref_hw)
    ref = model.state_dict()

    mapped = OrderedDict()
    for u, (cname, bname) in zip(units, target_names(arch)):
        try:
            mapped[cname + ".weight"] = f32(u.conv["weight"])
            if arch == "conv4":
                mapped[cname + ".bias"] = (f32(u.conv["bias"]) if "bias" in u.conv
                                           else torch.zeros(u.cout))
            bn = u.bn
            mapped[bname + ".weight"] = f32(bn["weight"]) if "weight" in bn else torch.ones(u.cout)
            mapped[bname + ".bias"] = f32(bn["bias"]) if "bias" in bn else torch.zeros(u.cout)
            mapped[bname + ".running_mean"] = f32(bn["running_mean"])
            mapped[bname + ".running_var"] = f32(bn["running_var"])
            nbt = bn.get("num_batches_tracked")  # absent before torch 0.4.1
            mapped[bname + ".num_batches_tracked"] = (
                nbt.detach().cpu().to(torch.int64).reshape(()) if nbt is not None
                else torch.zeros((), dtype=torch.int64))
        except ImportError_ as e:
            raise ImportError_(f"{label}: {u.cprefix}: {e}") from None
    if hp:
        g = groups[hp]
        mapped["fc.weight"] = f32(g["weight"])
        mapped["fc.bias"] = f32(g["bias"]) if "bias" in g else torch.zeros(n_class)
    if list(mapped) != list(ref) or any(mapped[k].shape != ref[k].shape for k in ref):
        raise ImportError_(f"{label}: internal error: the mapped tensors do not fit the reference "
                           f"{arch} module")
    model.load_state_dict(mapped, strict=True)  # the reference module takes them as they are

    dropped = [p for p in groups if p not in used and p != hp]
    if dropped:
        if strict:
            raise ImportError_(f"{label}: tensors outside the backbone and head (--strict): "
                               f"{', '.join(dropped[:8])}{' ...' if len(dropped) > 8 else ''}")
        notes = []
        if any(set(groups[p]) >= {"weight_g", "weight_v"} for p in dropped):
            notes.append("a weight-normalised cosine classifier (baseline++'s distLinear) is not "
                         "a plain linear head")
        tops = sorted({p.split(".")[0] for p in dropped})
        print(f"{label}: dropping {sum(len(groups[p]) for p in dropped)} tensors outside the "
              f"backbone and head ({', '.join(tops)})" + (f"; {'; '.join(notes)}" if notes else ""),
              file=log)
    sem_txt = ("flattened map" if flatten else
               "global max pool" if arch == "conv4" else "global average pool")
    print(f"{label}: {LIBRARIES[lib]['title']} layout ({why}); {arch} widths "
          f"{','.join(map(str, widths))}, embedding {sem_txt} ({model.embed_dim}-d), head "
          f"{hp + ' ' + str(n_class) + '-way' if hp else 'none'}"
          + (f", {len(used) - 2 * n_units} aliased modules merged"
             if len(used) > 2 * n_units else ""), file=log)

    meta = OrderedDict([
        ("format", "fsbench-checkpoint"),
        ("arch", arch),
        ("widths", ",".join(map(str, widths))),
        ("n_class", str(n_class)),
        ("embed_dim", str(model.embed_dim)),
        ("source", label),
    ])
    if meta_hw:
        meta["in_hw"] = str(meta_hw)
    if flatten:
        meta["flatten"] = "1"
    tensors = OrderedDict((k, v.numpy()) for k, v in model.state_dict().items())
    return meta, tensors


# ---- self-test ---------------------------------------------------------------------------------

def _selftest_cases():
    """(name, how it is saved, build() -> (module, saved object, input hw), convert kwargs,
    expected: None = converts, else a substring of the refusal)."""
    import argparse as _ap

    def sd_of(m):
        return m.state_dict()

    def feat_conv4():
        m = tm.ConvNet4((8, 8, 8, 8), n_class=5)
        sd = {("encoder." + k if k.startswith("encoder.") else k): v for k, v in sd_of(m).items()}
        return m, {"params": sd}, 32

    def feat_res12():
        m = tm.ResNet12((4, 6, 8, 10), n_class=5)
        sd = OrderedDict(sd_of(m))
        for k, v in tm.FeatAttention(10).state_dict().items():  # FEAT's slf_attn is dropped
            sd["slf_attn." + k] = v
        return m, {"params": sd}, 40

    def closerlook(head, hw):
        def build():
            m = tm.CloserLookModel(8, 5 if head else 0, head or "linear", in_hw=hw)
            return m, {"epoch": 399, "state": sd_of(m)}, hw
        return build

    def closerlook_conv6():
        m = tm.CloserLookModel(8, 0, depth=6)
        return m, {"epoch": 1, "state": sd_of(m)}, 84

    def simpleshot():
        m = tm.SimpleShotConv4(8, 5)
        dp = torch.nn.DataParallel(m)  # SimpleShot trains under DataParallel: 'module.' keys
        return m, {"epoch": 90, "arch": "conv4", "state_dict": dp.state_dict(), "best_prec1": 0.5,
                   "optimizer": {}}, 84

    def rfs_res12(se=False, avg_pool=True):
        def build():
            m = tm.RFSResNet12((4, 6, 8, 10), 5, se=se, avg_pool=avg_pool, in_hw=32)
            return m, {"opt": _ap.Namespace(model="resnet12"), "model": sd_of(m)}, 32
        return build

    def rfs_conv4():
        m = tm.RFSConvNet(8, 5)
        return m, {"opt": _ap.Namespace(model="convnet4"), "model": sd_of(m)}, 84

    def lfs_conv4(part, **kw):
        def build():
            emb = tm.LibFewShotConv64F(8, **kw)
            m = tm.LibFewShotModel(emb, 8 * 25, 5 if part == "model" else 0)
            saved = sd_of(m) if part == "model" else sd_of(emb)
            return m, saved, 84
        return build

    def lfs_res12():
        m = tm.LibFewShotModel(tm.Res12Layers((4, 6, 8, 10), pool="avg5"))
        return m, {"epoch": 9, "model": sd_of(m), "optimizer": {}, "lr_scheduler": {}}, 84

    def easyfsl_feat():
        m = tm.EasyFSLClassifier(tm.Res12Layers((4, 6, 8, 10), pool="avg"))
        return m, sd_of(m), 32

    def easyfsl_resnet12():
        m = tm.EasyFSLClassifier(tm.EasyFSLResNet())
        return m, sd_of(m), 32

    return [
        ("feat-conv4", "{'params'}, encoder.encoder.N", feat_conv4, {}, None),
        ("feat-res12+slf_attn", "{'params'}", feat_res12, {}, None),
        ("feat-res12 --strict", "{'params'}", feat_res12, {"strict": True}, "--strict"),
        ("closerlook-conv4 baseline", "{'epoch','state'}", closerlook("linear", 84), {}, None),
        ("closerlook-conv4 baseline++", "{'epoch','state'}", closerlook("dist", 84), {}, None),
        ("closerlook-conv4 protonet 32px", "{'epoch','state'}", closerlook(None, 32),
         {"in_hw": 32}, None),
        ("closerlook-conv4 baseline 32px", "{'epoch','state'}", closerlook("linear", 32), {},
         "--in-hw 32"),
        ("closerlook-conv6", "{'epoch','state'}", closerlook_conv6, {}, "6 blocks"),
        ("simpleshot-conv4", "{'state_dict'}, module.", simpleshot, {}, None),
        ("rfs-resnet12", "{'opt','model'}", rfs_res12(), {}, None),
        ("rfs-seresnet12", "{'opt','model'}", rfs_res12(se=True), {}, "squeeze-and-excitation"),
        ("rfs-resnet12 avg_pool=False", "{'opt','model'}", rfs_res12(avg_pool=False), {},
         "flattened map"),
        ("rfs-convnet4", "{'opt','model'}", rfs_conv4, {}, "no max pool after block 4"),
        ("libfewshot-conv64f model_best", "bare, emb_func.", lfs_conv4("model"), {}, None),
        ("libfewshot-conv64f emb_func_best", "bare", lfs_conv4("emb"), {}, None),
        ("libfewshot-conv64f leaky_relu", "bare, emb_func.",
         lfs_conv4("model", leaky_relu=True), {"slope": 0.2}, "LeakyReLU(0.2)"),
        ("libfewshot-conv64f no running stats", "bare, emb_func.",
         lfs_conv4("model", running_stats=False), {}, "no running statistics"),
        ("libfewshot-resnet12 model_last", "{'epoch','model',...}", lfs_res12, {}, None),
        ("easyfsl-feat_resnet12", "bare, backbone.", easyfsl_feat, {}, None),
        ("easyfsl-resnet12", "bare, backbone.", easyfsl_resnet12, {}, "torchvision-style"),
    ]


def selftest():
    import tempfile

    import export_torch  # noqa: E402

    torch.set_num_threads(1)
    failures = 0
    with tempfile.TemporaryDirectory(prefix="fsb_import_selftest_") as tmp:
        for i, (name, saved_as, build, kw, expect) in enumerate(_selftest_cases()):
            torch.manual_seed(100 + i)
            gen = torch.Generator().manual_seed(100 + i)
            model, saved, hw = build()
            if "no running stats" not in name:  # non-trivial eval-mode BN (the saved state
                tm.randomise_bn(model, gen)  # dict holds the very tensors, so sees this too)
            model.eval()
            pth = os.path.join(tmp, f"case{i}.pth")
            torch.save(saved, pth)
            log = open(os.devnull, "w")
            try:
                meta, tensors = convert(pth, log=log, **kw)
            except ImportError_ as e:
                msg = str(e)
                ok = expect is not None and expect in msg
                failures += not ok
                print(f"{'ok ' if ok else 'FAIL'} refused   {name:<36} {saved_as:<24} {msg}")
                continue
            finally:
                log.close()
            if expect is not None:
                failures += 1
                print(f"FAIL converted {name:<36} expected a refusal containing {expect!r}")
                continue
            out = os.path.join(tmp, f"case{i}.fsbt")
            fsbt.write(out, meta, tensors)
            ref, _ = export_torch.to_model(out)
            ref.eval()
            x = torch.randn(3, 3, hw, hw, generator=gen).double()
            with torch.no_grad():
                src = model.double()
                ref = ref.double()
                e_src, e_ref = src.embed(x), ref.embed(x)
                err = (((e_src - e_ref).abs().max() / e_src.abs().max()).item()
                       if e_src.shape == e_ref.shape else float("inf"))  # inf: other size
                lerr = None
                if ref.fc is not None and err < float("inf"):
                    l_src = src.head_logits(x) if hasattr(src, "head_logits") else src(x)[1]
                    l_ref = ref.fc(e_ref)
                    lerr = ((l_src - l_ref).abs().max() / l_src.abs().max()).item()
            ok = e_src.shape == e_ref.shape and err <= 1e-5 and (lerr is None or lerr <= 1e-5)
            failures += not ok
            desc = (f"{meta['arch']} {meta['widths']} D={meta['embed_dim']}"
                    f"{' flatten' if meta.get('flatten') == '1' else ''}"
                    f"{' in_hw ' + meta['in_hw'] if 'in_hw' in meta else ''} "
                    f"n_class {meta['n_class']}")
            print(f"{'ok ' if ok else 'FAIL'} converted {name:<36} {saved_as:<24} {desc}; "
                  f"embedding rel err {err:.1e}"
                  + (f", logits {lerr:.1e}" if lerr is not None else ""))
        # fsbench's own export of a flattened ConvNet-4 comes back unchanged
        m = tm.ConvNet4((8, 8, 8, 8), n_class=5, flatten=True)
        tm.randomise_bn(m, torch.Generator().manual_seed(7))
        pth = os.path.join(tmp, "fsb.pth")
        torch.save(m.state_dict(), pth)
        with open(os.devnull, "w") as log:
            meta, tensors = convert(pth, log=log)
        fsbt.write(os.path.join(tmp, "fsb.fsbt"), meta, tensors)
        back = export_torch.export(os.path.join(tmp, "fsb.fsbt"))
        same = (list(back) == list(m.state_dict()) and meta.get("flatten") == "1"
                and all(torch.equal(back[k], v) for k, v in m.state_dict().items()))
        failures += not same
        print(f"{'ok ' if same else 'FAIL'} round trip fsbench export (flattened conv4) -> import "
              f"-> export: {'identical tensors' if same else 'DIFFERENT'}")
    print(f"import_torch selftest: {'all passed' if not failures else f'{failures} FAILED'}")
    return 1 if failures else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("input", nargs="?", help="PyTorch checkpoint (.pth / .tar)")
    ap.add_argument("output", nargs="?", help="fsbench checkpoint to write (.fsbt)")
    ap.add_argument("--from", dest="source", default="auto", choices=["auto"] + list(LIBRARIES),
                    help="the library that trained it (default: guessed from the keys)")
    ap.add_argument("--embedding", choices=("maxpool", "avgpool", "flatten"),
                    help="how the source network turns its last map into the embedding")
    ap.add_argument("--slope", type=float, help="the source's LeakyReLU slope (0 = ReLU)")
    ap.add_argument("--in-hw", type=int, help="input side the network was trained on "
                    "(written to the checkpoint; sets the flattened ConvNet-4's size)")
    ap.add_argument("--head", default="auto", help="the head's module name, or 'none'")
    ap.add_argument("--strict", action="store_true",
                    help="refuse tensors outside the backbone and head")
    ap.add_argument("--selftest", action="store_true", help="convert every supported layout "
                    "from small random modules and compare embeddings")
    a = ap.parse_args()
    if a.selftest:
        return selftest()
    if not a.input or not a.output:
        ap.error("input and output are required (or --selftest)")
    try:
        meta, tensors = convert(a.input, a.strict, source=a.source, embedding=a.embedding,
                                slope=a.slope, in_hw=a.in_hw, head=a.head)
    except ImportError_ as e:
        print(f"import_torch: {e}", file=sys.stderr)
        return 1
    fsbt.write(a.output, meta, tensors)
    print(f"{a.output}: {meta['arch']} widths {meta['widths']} embed_dim {meta['embed_dim']}"
          f"{' (flattened)' if meta.get('flatten') == '1' else ''} n_class {meta['n_class']}, "
          f"{len(tensors)} tensors", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
