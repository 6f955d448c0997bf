#!/usr/bin/python3
"""torch_fixtures.py - regenerate the committed PyTorch parity fixtures in tests/fixtures/.

Needs Debian's /usr/bin/python3 (torch 1.13, numpy); CI never runs this. Deterministic: fixed
seeds, CPU, single thread. Writes (tests/fixtures/README.md describes each file):
  torch_conv4.fsbt  ConvNet-4 (widths 64), 84x84, N=4, 5-way: state_dict, input/target, per
                    mode (eval, train) embedding/logits/loss/grads, BN stats after the train
                    forward, and params after 2 SGD steps (lr .1, momentum .9, nesterov, wd 5e-4)
  torch_res12.fsbt  ResNet-12 widths 8,16,24,32, 40x40, N=2, 5-way, the same content
  torch_sgd.fsbt    plain torch.optim.SGD cases (groups, lr multipliers, frozen group) over 3
                    steps, and torch lr-scheduler curves
  torch_adam.fsbt   torch.optim.Adam and AdamW cases (groups, lr multipliers, weight decay,
                    a frozen group, a group frozen for one step) over 25 steps
  torch_feat_attention.fsbt  FEAT's self-attention block (MultiHeadAttention(1, 64, 64, 64)),
                    B=2 sets of n=5 vectors: parameters, input, output, loss and the
                    input/parameter gradients of sum(output * loss.weight), eval mode (FEAT's
                    dropout rates, inactive) and train mode with both dropouts at p = 0
  torch_featloss.fsbt  FEAT's episode loss (FEAT._forward with use_euclidean, plus
                    fsl_trainer's loss + balance * CE(reg)) on one 5-way 2-shot 3-query
                    episode of d=16 embeddings in FEAT's row order: parameters, embeddings,
                    per mode (eval: main loss only; train: dropouts 0, balance 0.1) logits,
                    losses and the embedding/parameter gradients
  torch_roundtrip_conv4.fsbt  a tiny random ConvNet-4 saved FEAT-style (.pth) by torch,
                    imported with tools/import_torch.py, plus a test input and its embedding
Precision: the model fixtures are computed in float64 by torch from float32-representable
parameters and inputs, then stored as float32 (so they are the exact answer rounded once);
the SGD fixture is computed in float32, like fsbench's optimiser.
Eval mode runs first, on the stored (initial) state_dict, whose BN affine parameters and
running statistics are randomised (seeded) so that eval BN is not the identity.

Usage: /usr/bin/python3 tools/torch_fixtures.py [--out tests/fixtures] [--only NAME ...]
"""
import argparse
import copy
import os
import sys
import tempfile
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import export_torch  # noqa: E402
import fsbt  # noqa: E402
import import_torch  # noqa: E402
import torch_models as tm  # noqa: E402


def f32(t):
    """A numpy copy (never a view: parameters keep changing in place), float32 or int64."""
    t = t.detach().cpu()
    if t.dtype == torch.int64:
        return t.numpy().astype(np.int64, copy=True)
    return t.to(torch.float32).numpy().copy()


def parity(arch, widths, n_class, hw, n, seed):
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = tm.build(arch, widths, n_class)
    tm.randomise_bn(model, gen)
    x = torch.randn(n, 3, hw, hw, generator=gen)
    target = torch.randint(0, n_class, (n,), generator=gen)
    model = model.double()
    x = x.double()
    init = copy.deepcopy(model)
    out = {k: f32(v) for k, v in model.state_dict().items()}
    out["input"] = f32(x)
    out["target"] = target.numpy().astype(np.int64)
    zero = []
    for mode in ("eval", "train"):  # eval first: it reads the initial running statistics
        model.train(mode == "train")
        model.zero_grad(set_to_none=True)
        xi = x.clone().requires_grad_(True)
        emb, logits = model(xi)
        loss = F.cross_entropy(logits, target)
        loss.backward()
        out[f"{mode}.embedding"] = f32(emb)
        out[f"{mode}.logits"] = f32(logits)
        out[f"{mode}.loss"] = f32(loss)
        out[f"{mode}.grad.input"] = f32(xi.grad)
        for name, p in model.named_parameters():
            g = p.grad
            if mode == "train" and float(g.abs().max()) < 1e-10:
                # a conv bias right before a train-mode BN: exactly 0 in exact arithmetic
                # (BN subtracts the batch mean); store the exact value, list it in meta
                zero.append(f"{mode}.grad.{name}")
                g = torch.zeros_like(g)
            out[f"{mode}.grad.{name}"] = f32(g)
    sd = model.state_dict()
    for bn in tm.bn_names(model):
        for s in ("running_mean", "running_var"):
            out[f"train.after.{bn}.{s}"] = f32(sd[f"{bn}.{s}"])
    m2 = init
    m2.train()
    opt = torch.optim.SGD(m2.parameters(), lr=0.1, momentum=0.9, nesterov=True,
                          weight_decay=5e-4)
    for _ in range(2):
        opt.zero_grad(set_to_none=True)
        _, logits = m2(x)
        F.cross_entropy(logits, target).backward()
        opt.step()
    for name, p in m2.named_parameters():
        out[f"sgd.step2.{name}"] = f32(p)
    meta = {
        "arch": arch,
        "widths": ",".join(map(str, widths)),
        "n_class": str(n_class),
        "embed_dim": str(widths[-1]),
        "input_hw": f"{hw},{hw}",
        "torch_version": torch.__version__,
        "seed": str(seed),
        "precision": "float64 reference, stored float32",
        "eval_state": "initial state_dict (eval runs before the train forward)",
        "sgd": "lr=0.1 momentum=0.9 nesterov=1 weight_decay=5e-4 steps=2 mode=train",
        "exact_zero_grads": ",".join(zero),
    }
    return meta, out


# ---- SGD and schedules ------------------------------------------------------------------

SGD_CASES = [
    # name, lr, momentum, dampening, nesterov, groups [(count, lr_mult, weight_decay, frozen)]
    ("nesterov", 0.1, 0.9, 0.0, 1, [(7, 1.0, 5e-4, 0), (5, 0.1, 0.0, 0), (3, 1.0, 5e-4, 1)]),
    ("momentum", 0.05, 0.9, 0.1, 0, [(6, 1.0, 1e-3, 0), (4, 2.0, 0.0, 0)]),
    ("plain", 0.2, 0.0, 0.0, 0, [(5, 1.0, 1e-2, 0), (3, 0.5, 0.0, 1)]),
]

ADAM_STEPS = 25
ADAM_CASES = [
    # name, torch class, lr, betas, eps, groups [(count, lr_mult, weight_decay, frozen)];
    # frozen 2: the group has no grad at step 3 only (its own step count falls behind)
    ("adam", "Adam", 1e-3, (0.9, 0.999), 1e-8, [(9, 1.0, 0.0, 0), (4, 10.0, 0.0, 2)]),
    ("adam_wd", "Adam", 0.01, (0.8, 0.99), 1e-6, [(6, 1.0, 5e-4, 0), (3, 1.0, 0.0, 1)]),
    ("adamw", "AdamW", 2e-3, (0.9, 0.999), 1e-8, [(7, 1.0, 0.05, 0), (5, 0.5, 0.0, 0)]),
]

SCHEDULES = [
    # name, fsbench spec, base lr, epochs, torch scheduler factory
    ("step", "step:3:0.5", 0.1, 10,
     lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=3, gamma=0.5)),
    ("multistep", "multistep:2,5,7:0.1", 0.1, 10,
     lambda o: torch.optim.lr_scheduler.MultiStepLR(o, milestones=[2, 5, 7], gamma=0.1)),
    ("cosine", "cosine:10:0.001", 0.1, 11,
     lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=10, eta_min=0.001)),
    ("cosine_warmup", "cosine:10:0+warmup=3:0.1", 0.05, 10,
     lambda o: torch.optim.lr_scheduler.SequentialLR(o, [
         torch.optim.lr_scheduler.LinearLR(o, start_factor=0.1, total_iters=3),
         torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=7, eta_min=0.0)], milestones=[3])),
]


def sgd_fixture(seed):
    gen = torch.Generator().manual_seed(seed)
    meta = {"torch_version": torch.__version__, "seed": str(seed), "steps": "3",
            "precision": "float32 (torch.optim.SGD on float32 tensors)",
            "cases": ",".join(c[0] for c in SGD_CASES),
            "schedules": ",".join(s[0] for s in SCHEDULES)}
    # the first case also under the plain keys the brief asks for
    meta.update(lr="0.1", momentum="0.9", nesterov="1", weight_decay="5e-4")
    out = {}
    for name, lr, mom, damp, nest, groups in SGD_CASES:
        meta.update({f"{name}.lr": repr(lr), f"{name}.momentum": repr(mom),
                     f"{name}.dampening": repr(damp), f"{name}.nesterov": str(nest),
                     f"{name}.n_groups": str(len(groups))})
        params, pgroups = [], []
        for g, (count, mult, wd, frozen) in enumerate(groups):
            meta.update({f"{name}.group{g}.lr_mult": repr(mult),
                         f"{name}.group{g}.weight_decay": repr(wd),
                         f"{name}.group{g}.frozen": str(frozen)})
            p = torch.nn.Parameter(torch.randn(count, generator=gen))
            params.append(p)
            pgroups.append({"params": [p], "lr": lr * mult, "weight_decay": wd})
            out[f"{name}.group{g}.param0"] = f32(p)
        opt = torch.optim.SGD(pgroups, lr=lr, momentum=mom, dampening=damp,
                              nesterov=bool(nest))
        for s in range(3):
            for g, p in enumerate(params):
                grad = torch.randn(p.shape, generator=gen)
                out[f"{name}.group{g}.grad{s}"] = f32(grad)
                p.grad = None if groups[g][3] else grad
            opt.step()
            for g, p in enumerate(params):
                out[f"{name}.group{g}.param{s + 1}"] = f32(p)
    for name, spec, base, epochs, make in SCHEDULES:
        p = torch.nn.Parameter(torch.zeros(1))
        opt = torch.optim.SGD([p], lr=base)
        sched = make(opt)
        lrs = []
        for _ in range(epochs):
            lrs.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        meta[f"sched.{name}.spec"] = spec
        meta[f"sched.{name}.base_lr"] = repr(base)
        out[f"sched.{name}"] = np.array(lrs, dtype=np.float32)
    return meta, out


def adam_fixture(seed):
    gen = torch.Generator().manual_seed(seed)
    meta = {"torch_version": torch.__version__, "seed": str(seed), "steps": str(ADAM_STEPS),
            "precision": "float32 (torch.optim.Adam/AdamW, single-tensor path, on float32)",
            "cases": ",".join(c[0] for c in ADAM_CASES)}
    out = {}
    for name, cls, lr, betas, eps, groups in ADAM_CASES:
        meta.update({f"{name}.kind": cls.lower(), f"{name}.lr": repr(lr),
                     f"{name}.beta1": repr(betas[0]), f"{name}.beta2": repr(betas[1]),
                     f"{name}.eps": repr(eps), f"{name}.n_groups": str(len(groups))})
        params, pgroups = [], []
        for g, (count, mult, wd, frozen) in enumerate(groups):
            meta.update({f"{name}.group{g}.lr_mult": repr(mult),
                         f"{name}.group{g}.weight_decay": repr(wd),
                         f"{name}.group{g}.frozen": str(frozen)})
            p = torch.nn.Parameter(torch.randn(count, generator=gen))
            params.append(p)
            pgroups.append({"params": [p], "lr": lr * mult, "weight_decay": wd})
            out[f"{name}.group{g}.param0"] = f32(p)
        opt = getattr(torch.optim, cls)(pgroups, lr=lr, betas=betas, eps=eps, foreach=False)
        for s in range(ADAM_STEPS):
            for g, p in enumerate(params):
                # gradients of mixed scale, some tiny, so eps and the bias correction matter
                grad = torch.randn(p.shape, generator=gen) * (10.0 ** (-(s % 5)))
                out[f"{name}.group{g}.grad{s}"] = f32(grad)
                frozen = groups[g][3] == 1 or (groups[g][3] == 2 and s == 3)
                p.grad = None if frozen else grad
            opt.step()
            for g, p in enumerate(params):
                out[f"{name}.group{g}.param{s + 1}"] = f32(p)
    return meta, out


# ---- FEAT self-attention -----------------------------------------------------------------

def feat_attention_fixture(seed, B=2, n=5, d=64):
    torch.manual_seed(seed)  # FEAT's initialisation draws from the global generator
    gen = torch.Generator().manual_seed(seed)
    model = tm.FeatAttention(d)  # FEAT's rates: attention 0.1, output 0.5
    with torch.no_grad():  # LayerNorm's affine off the identity, so that it is tested
        model.layer_norm.weight.copy_(torch.rand(d, generator=gen) + 0.5)
        model.layer_norm.bias.copy_(torch.rand(d, generator=gen) * 0.6 - 0.3)
    x = torch.randn(B, n, d, generator=gen)
    r = torch.randn(B, n, d, generator=gen)
    model = model.double()
    out = {k: f32(v) for k, v in model.state_dict().items()}
    out["input"] = f32(x)
    out["loss.weight"] = f32(r)
    for mode in ("eval", "train"):
        m = copy.deepcopy(model)
        if mode == "train":  # parity without dropout: torch's masks are not fsbench's
            m.attn_dropout.p = 0.0
            m.dropout.p = 0.0
        m.train(mode == "train")
        xi = x.double().clone().requires_grad_(True)
        y = m(xi)
        loss = (y * r.double()).sum()
        loss.backward()
        out[f"{mode}.output"] = f32(y)
        out[f"{mode}.loss"] = f32(loss)
        out[f"{mode}.grad.input"] = f32(xi.grad)
        for name, p in m.named_parameters():
            out[f"{mode}.grad.{name}"] = f32(p.grad)
    meta = {
        "module": "FEAT slf_attn = MultiHeadAttention(1, d, d, d, dropout=0.5) "
                  "(Sha-Lab/FEAT model/models/feat.py)",
        "B": str(B), "n": str(n), "d": str(d),
        "temperature": repr(d ** 0.5),
        "eval.attn_dropout": "0.1", "eval.dropout": "0.5",
        "train.attn_dropout": "0", "train.dropout": "0",
        "loss": "sum(output * loss.weight)",
        "torch_version": torch.__version__,
        "seed": str(seed),
        "precision": "float64 reference, stored float32",
    }
    return meta, out


# ---- FEAT episode loss -------------------------------------------------------------------

def feat_episode(attn, emb, way, shot, query, temperature, temperature2):
    """FEAT._forward (Sha-Lab/FEAT model/models/feat.py, use_euclidean, one task) on emb
    (way*(shot+query), d) in FEAT's instance-major order: row j*way + c is shot j of class c,
    row way*shot + j*way + c query j of class c. Returns the query logits (rows j*way + c,
    label c) and, when attn is training, the regulariser's logits (rows i*way + c = element
    i of class c's support-then-query set, label c), else None."""
    d = emb.shape[1]
    ns = way * shot
    support = emb[:ns].reshape(shot, way, d)
    queries = emb[ns:].reshape(query, way, d)
    proto = attn(support.mean(0)[None])[0]  # one set of `way` prototypes
    q = queries.reshape(-1, d)
    logits = -((q[:, None, :] - proto[None, :, :]) ** 2).sum(2) / temperature
    if not attn.training:
        return logits, None
    task = torch.cat([support, queries], 0)  # (shot+query, way, d)
    center = attn(task.transpose(0, 1).contiguous()).mean(1)  # way sets of shot+query
    rows = task.reshape(-1, d)  # the untransformed embeddings
    logits_reg = -((rows[:, None, :] - center[None, :, :]) ** 2).sum(2) / temperature2
    return logits, logits_reg


def featloss_fixture(seed, way=5, shot=2, query=3, d=16, balance=0.1, t1=32.0, t2=64.0):
    torch.manual_seed(seed)  # FEAT's initialisation draws from the global generator
    gen = torch.Generator().manual_seed(seed)
    model = tm.FeatAttention(d)
    with torch.no_grad():  # LayerNorm's affine off the identity, as in the attention fixture
        model.layer_norm.weight.copy_(torch.rand(d, generator=gen) + 0.5)
        model.layer_norm.bias.copy_(torch.rand(d, generator=gen) * 0.6 - 0.3)
    emb = torch.randn(way * (shot + query), d, generator=gen)
    model = model.double()
    out = {k: f32(v) for k, v in model.state_dict().items()}
    out["emb"] = f32(emb)
    label = torch.arange(way).repeat(query)  # fsl_trainer.prepare_label
    label_aux = torch.arange(way).repeat(shot + query)
    correct = {}
    for mode in ("eval", "train"):
        m = copy.deepcopy(model)
        if mode == "train":  # parity without dropout: torch's masks are not fsbench's
            m.attn_dropout.p = 0.0
            m.dropout.p = 0.0
        m.train(mode == "train")
        e = emb.double().clone().requires_grad_(True)
        logits, logits_reg = feat_episode(m, e, way, shot, query, t1, t2)
        loss_main = F.cross_entropy(logits, label)
        loss = loss_main
        if logits_reg is not None:
            loss_reg = F.cross_entropy(logits_reg, label_aux)
            loss = loss_main + balance * loss_reg
            out[f"{mode}.logits_reg"] = f32(logits_reg)
            out[f"{mode}.loss_reg"] = f32(loss_reg)
        loss.backward()
        out[f"{mode}.logits"] = f32(logits)
        out[f"{mode}.loss_main"] = f32(loss_main)
        out[f"{mode}.loss"] = f32(loss)
        correct[mode] = str(int((logits.argmax(1) == label).sum()))
        out[f"{mode}.grad.emb"] = f32(e.grad)
        for name, p in m.named_parameters():
            out[f"{mode}.grad.{name}"] = f32(p.grad)
    meta = {
        "module": "FEAT._forward (use_euclidean) + fsl_trainer loss, slf_attn = "
                  "MultiHeadAttention(1, d, d, d, dropout=0.5) (Sha-Lab/FEAT)",
        "way": str(way), "shot": str(shot), "query": str(query), "d": str(d),
        "temperature": repr(t1), "temperature2": repr(t2), "balance": repr(balance),
        "layout": "FEAT instance-major: emb row j*way+c = shot j of class c, "
                  "way*shot + j*way+c = query j of class c; logits rows j*way+c; "
                  "logits_reg rows i*way+c = element i (supports, then queries) of class c",
        "eval.attn_dropout": "0.1", "eval.dropout": "0.5",
        "train.attn_dropout": "0", "train.dropout": "0",
        "eval.n_correct": correct["eval"], "train.n_correct": correct["train"],
        "torch_version": torch.__version__,
        "seed": str(seed),
        "precision": "float64 reference, stored float32",
    }
    return meta, out


# ---- import round trip ------------------------------------------------------------------

def roundtrip_fixture(seed, tmpdir):
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = tm.ConvNet4((8, 8, 8, 8), n_class=5)
    tm.randomise_bn(model, gen)
    with torch.no_grad():  # nonzero counters, to see int64 scalars survive
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.num_batches_tracked.fill_(1000 + seed)
    # saved the way FEAT saves con-pre.pth: {'params': state_dict} with encoder.encoder.N keys
    feat_sd = {("encoder." + k if k.startswith("encoder.") else k): v
               for k, v in model.state_dict().items()}
    pth = os.path.join(tmpdir, "conv4_tiny_feat.pth")
    torch.save({"params": feat_sd}, pth)
    meta, tensors = import_torch.convert(pth, strict=True)
    x = torch.randn(2, 3, 32, 32, generator=gen)
    model.eval()
    with torch.no_grad():
        emb64, _ = copy.deepcopy(model).double()(x.double())
    tensors["roundtrip.input"] = f32(x)
    tensors["roundtrip.embedding"] = f32(emb64)
    meta["roundtrip"] = "eval-mode embedding of roundtrip.input, float64 reference stored float32"
    meta["torch_version"] = torch.__version__
    meta["seed"] = str(seed)
    return meta, tensors, model, x


def check_roundtrip(path, model, x):
    """export_torch(import_torch(model)) must give the very same tensors and features."""
    back, _ = export_torch.to_model(path)
    a, b = model.state_dict(), back.state_dict()
    assert list(a) == list(b)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    model.eval()
    back.eval()
    with torch.no_grad():
        assert torch.equal(model(x)[0], back(x)[0])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=os.path.normpath(os.path.join(HERE, "..", "tests", "fixtures")))
    ap.add_argument("--only", nargs="+", metavar="NAME", help="regenerate only these files")
    a = ap.parse_args()
    warnings.filterwarnings("ignore", category=UserWarning)  # SequentialLR's epoch notice
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    os.makedirs(a.out, exist_ok=True)
    jobs = [
        ("torch_conv4.fsbt", lambda: parity("conv4", (64, 64, 64, 64), 5, 84, 4, 1)),
        ("torch_res12.fsbt", lambda: parity("res12", (8, 16, 24, 32), 5, 40, 2, 2)),
        ("torch_sgd.fsbt", lambda: sgd_fixture(3)),
        ("torch_adam.fsbt", lambda: adam_fixture(5)),
        ("torch_feat_attention.fsbt", lambda: feat_attention_fixture(6)),
        ("torch_featloss.fsbt", lambda: featloss_fixture(7)),
    ]
    if a.only:
        jobs = [j for j in jobs if j[0] in a.only]
    for name, make in jobs:
        meta, tensors = make()
        path = os.path.join(a.out, name)
        fsbt.write(path, meta, tensors)
        m2, t2 = fsbt.read(path)
        assert m2 == meta and list(t2) == list(tensors)
        print(f"{path}: {len(tensors)} tensors, {os.path.getsize(path)} bytes")
    if a.only and "torch_roundtrip_conv4.fsbt" not in a.only:
        return
    with tempfile.TemporaryDirectory() as tmp:
        meta, tensors, model, x = roundtrip_fixture(4, tmp)
    path = os.path.join(a.out, "torch_roundtrip_conv4.fsbt")
    fsbt.write(path, meta, tensors)
    check_roundtrip(path, model, x)
    print(f"{path}: {len(tensors)} tensors, {os.path.getsize(path)} bytes (round trip exact)")


if __name__ == "__main__":
    main()
