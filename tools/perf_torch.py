#!/usr/bin/python3
"""perf_torch.py - fsbench's engine against tuned PyTorch on the same CPU, interleaved.

Runs the `bench perf` workloads (per network and batch size: a train step with a 64-way CE
head and an SGD-momentum step, and inference; random 84x84 inputs) in PyTorch
(torch.set_num_threads(2), channels_last, tcmalloc preloaded when
/usr/lib/x86_64-linux-gnu/libtcmalloc.so.4 exists) and with `bench perf --json`, as
subprocesses. For each (network, batch) in turn the two engines alternate A B A B ...
(--rounds times each; the machine is shared, figures drift, so only interleaved medians are
compared). Prints every round, then per workload the medians and the ratio fsbench / PyTorch.

Networks: conv4 (64 filters per block), conv4-32 (32 filters, MAML's backbone), res12.

Usage: tools/perf_torch.py [--bench build/bench] [--rounds 3] [--arch conv4,conv4-32,res12|all]
                           [--batch 5,25,64] [--iters N] [--split on|off|both]
                           [--conv gemm|onednn|both] [--json FILE]
--split both adds fsbench without its small-batch split (bench perf --split off, the engine
before it) as a third engine in every round (A B C A B C): before/after and the ratio to
PyTorch of both from one run. --conv both does the same with bench perf --conv gemm and
--conv onednn (the oneDNN convolution backend; a build with oneDNN); with --split both too,
every combination runs in every round.
Needs Debian's /usr/bin/python3 with torch; never needed to build or test fsbench.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

TCMALLOC = "/usr/lib/x86_64-linux-gnu/libtcmalloc.so.4"
HERE = os.path.dirname(os.path.abspath(__file__))


NETS = {"conv4": ("conv4", (64,) * 4), "conv4-32": ("conv4", (32,) * 4),
        "res12": ("res12", (64, 160, 320, 640))}
DEFAULT_BATCH = {"conv4": 64, "conv4-32": 64, "res12": 32}


def default_iters(net, train):
    """bench perf's defaults: 10 / 20 for ConvNet-4 train / infer, 3 / 5 for ResNet-12."""
    if NETS[net][0] == "conv4":
        return 10 if train else 20
    return 3 if train else 5


def torch_worker(net, batch, iters_override):
    """Time one network at one batch in PyTorch (train, then infer); print one JSON line."""
    import torch
    import torch.nn.functional as F

    sys.path.insert(0, HERE)
    import torch_models

    torch.set_num_threads(2)
    torch.manual_seed(0)
    out = {"torch": torch.__version__, "threads": torch.get_num_threads(),
           "tcmalloc": TCMALLOC in os.environ.get("LD_PRELOAD", ""), "workloads": []}
    arch, widths = NETS[net]
    model = torch_models.build(arch, widths, 64).to(memory_format=torch.channels_last)
    x = torch.randn(batch, 3, 84, 84).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 64, (batch,))
    opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
    for train in (True, False):
        iters = iters_override or default_iters(net, train)
        times = []
        for it in range(iters + 1):
            t0 = time.perf_counter()
            if train:
                model.train()
                opt.zero_grad(set_to_none=True)
                _, logits = model(x)
                loss = F.cross_entropy(logits, y)
                loss.backward()
                opt.step()
            else:
                model.eval()
                with torch.no_grad():
                    model.embed(x)
            if it > 0:
                times.append(time.perf_counter() - t0)
        sec = statistics.median(times)
        out["workloads"].append({"name": f"{net}-{'train' if train else 'infer'}",
                                 "batch": batch, "seconds": sec, "img_s": batch / sec})
    print(json.dumps(out))


def run_torch(args, net, batch):
    env = dict(os.environ)
    if os.path.exists(TCMALLOC) and not args.no_tcmalloc:
        env["LD_PRELOAD"] = (TCMALLOC + " " + env.get("LD_PRELOAD", "")).strip()
    cmd = ["/usr/bin/python3", os.path.abspath(__file__), "--worker", "--arch", net,
           "--batch", str(batch)]
    if args.iters:
        cmd += ["--iters", str(args.iters)]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if res.returncode != 0:
        sys.exit("perf_torch: the PyTorch worker failed (is python3-torch installed?):\n" +
                 res.stderr.strip())
    return json.loads(res.stdout.strip().splitlines()[-1])


def run_bench(args, net, batch, split, conv):
    cmd = [args.bench, "perf", "--json", "--arch", net, "--batch", str(batch), "--threads", "2",
           "--split", split, "--conv", conv]
    if args.iters:
        cmd += ["--iters", str(args.iters)]
    if not os.access(args.bench, os.X_OK):
        sys.exit(f"perf_torch: --bench {args.bench} is not an executable (build fsbench first)")
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        sys.exit(f"perf_torch: {args.bench} perf failed:\n" + res.stderr.strip())
    return json.loads(res.stdout)


def parse_nets(text):
    nets = []
    for item in text.split(","):
        if item == "all":
            nets += list(NETS)
        elif item in NETS:
            nets.append(item)
        else:
            raise argparse.ArgumentTypeError(
                f"'{item}' is not conv4, conv4-32, res12 or all (in '{text}')")
    return [n for n in NETS if n in nets]  # bench perf's order, no repeats


def parse_batches(text):
    try:
        vals = sorted({int(v) for v in text.split(",")})
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a comma list of batch sizes")
    if not vals or vals[0] < 1:
        raise argparse.ArgumentTypeError(f"'{text}': batch sizes must be >= 1")
    return vals


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bench", default=os.path.join(HERE, "..", "build", "bench"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--arch", default="all", type=parse_nets,
                    help="comma list of conv4, conv4-32, res12, or all (default all)")
    ap.add_argument("--batch", default=None, type=parse_batches,
                    help="comma list of batch sizes (default 64 for ConvNet-4, 32 for ResNet-12)")
    ap.add_argument("--iters", type=int, default=0)
    ap.add_argument("--json", default=None, help="also write every round and the medians here")
    ap.add_argument("--split", default="on", choices=["on", "off", "both"],
                    help="bench perf --split: off runs fsbench without its small-batch split, "
                         "both runs the two in every round")
    ap.add_argument("--conv", default="gemm", choices=["gemm", "onednn", "both"],
                    help="bench perf --conv: onednn runs fsbench's oneDNN convolution backend, "
                         "both runs the two in every round")
    ap.add_argument("--no-tcmalloc", action="store_true")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        torch_worker(args.arch[0], args.batch[0], args.iters)
        return
    convs = ["gemm", "onednn"] if args.conv == "both" else [args.conv]
    # fsbench variants (split, conv); keys "on" / "off" with the default conv, as before
    splits = [(sp, cv) for sp in (["on", "off"] if args.split == "both" else [args.split])
              for cv in convs]
    key_of = {v: v[0] if v[1] == "gemm" else f"{v[0]}_conv_{v[1]}" for v in splits}
    torch_runs, bench_runs, order = {}, {v: {} for v in splits}, []
    rss, t, b = [], None, None
    for net in args.arch:
        for batch in args.batch or [DEFAULT_BATCH[net]]:
            for r in range(args.rounds):
                t = run_torch(args, net, batch)
                for w in t["workloads"]:
                    torch_runs.setdefault((w["name"], batch), []).append(w["img_s"])
                line = f"{net} batch {batch} round {r + 1}: torch " + " ".join(
                    f"{w['name']}={w['img_s']:.1f}" for w in t["workloads"])
                for sp in splits:
                    b = run_bench(args, net, batch, *sp)
                    rss.append(b["peak_rss_mb"])
                    for w in b["workloads"]:
                        key = (w["name"], batch)
                        if key not in order:
                            order.append(key)
                        bench_runs[sp].setdefault(key, []).append(w["img_s"])
                    line += f" | fsbench split {sp[0]} conv {sp[1]} " + " ".join(
                        f"{w['name']}={w['img_s']:.1f}" for w in b["workloads"])
                print(line, flush=True)
    print(f"\nPyTorch {t['torch']} threads {t['threads']} tcmalloc {t['tcmalloc']} channels_last; "
          f"fsbench openblas core {b['openblas_core']}, peak RSS {max(rss):.0f} MB")
    head = f"{'workload':<16} {'batch':>5} {'PyTorch img/s':>14}"
    for sp in splits:
        head += f" {sp[0] + ' ' + sp[1] + ' img/s':>18} {'ratio':>7}"
    if len(splits) == 2:
        head += f" {'on/off' if len(convs) == 1 else 'dnn/gemm':>8}"
    print(head + f"   (medians of {args.rounds}, interleaved per network and batch)")
    rows = []
    for name, batch in order:
        tm = statistics.median(torch_runs[(name, batch)])
        row = {"name": name, "batch": batch, "torch_img_s": torch_runs[(name, batch)],
               "torch_median": tm}
        line = f"{name:<16} {batch:>5} {tm:>14.1f}"
        for sp in splits:
            bm = statistics.median(bench_runs[sp][(name, batch)])
            k = key_of[sp]
            row[f"fsbench_split_{k}_img_s"] = bench_runs[sp][(name, batch)]
            row[f"fsbench_split_{k}_median"] = bm
            row[f"ratio_split_{k}"] = bm / tm
            line += f" {bm:>18.1f} {bm / tm:>6.2f}x"
        if len(splits) == 2:
            a, b2 = (row[f"fsbench_split_{key_of[sp]}_median"] for sp in splits)
            ratio = a / b2 if len(convs) == 1 else b2 / a  # on/off, or onednn/gemm
            row["split_on_over_off" if len(convs) == 1 else "onednn_over_gemm"] = ratio
            line += f" {ratio:>7.2f}x"
        rows.append(row)
        print(line)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"torch": t["torch"], "openblas_core": b["openblas_core"],
                       "rounds": args.rounds, "workloads": rows}, f, indent=1)
            f.write("\n")

if __name__ == "__main__":
    main()
