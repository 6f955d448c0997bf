#!/usr/bin/python3
"""perf_torch.py - fsbench's engine against tuned PyTorch on the same CPU, interleaved.

Runs the `bench perf` workloads (ConvNet-4 train step batch 64 with a 64-way CE head and an
SGD step, ConvNet-4 inference batch 64, ResNet-12 train step / inference batch 32, random
84x84 inputs) in PyTorch (torch.set_num_threads(2), channels_last, tcmalloc preloaded when
/usr/lib/x86_64-linux-gnu/libtcmalloc.so.4 exists) and with `bench perf --json`, as
subprocesses in the order A B A B ... (the machine is shared: figures drift, so only
interleaved medians are compared). Prints medians and the ratio fsbench / PyTorch.

Usage: tools/perf_torch.py [--bench build/bench] [--rounds 3] [--arch conv4|res12|all]
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


def torch_worker(arch, batch_override, iters_override):
    """Time the workloads in PyTorch; print one JSON line."""
    import torch
    import torch.nn.functional as F

    sys.path.insert(0, HERE)
    import torch_models

    torch.set_num_threads(2)
    torch.manual_seed(0)
    out = {"torch": torch.__version__, "threads": torch.get_num_threads(),
           "tcmalloc": TCMALLOC in os.environ.get("LD_PRELOAD", ""), "workloads": []}
    archs = ["conv4", "res12"] if arch == "all" else [arch]
    for a in archs:
        batch = batch_override or (64 if a == "conv4" else 32)
        widths = (64,) * 4 if a == "conv4" else (64, 160, 320, 640)
        model = torch_models.build(a, widths, 64).to(memory_format=torch.channels_last)
        x = torch.randn(batch, 3, 84, 84).contiguous(memory_format=torch.channels_last)
        y = torch.randint(0, 64, (batch,))
        opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
        for train in (True, False):
            iters = iters_override or ((10 if train else 20) if a == "conv4" else (3 if train else 5))
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
            out["workloads"].append({"name": f"{a}-{'train' if train else 'infer'}",
                                     "batch": batch, "seconds": sec, "img_s": batch / sec})
    print(json.dumps(out))


def run_torch(args):
    env = dict(os.environ)
    if os.path.exists(TCMALLOC) and not args.no_tcmalloc:
        env["LD_PRELOAD"] = (TCMALLOC + " " + env.get("LD_PRELOAD", "")).strip()
    cmd = ["/usr/bin/python3", os.path.abspath(__file__), "--worker", "--arch", args.arch]
    if args.batch:
        cmd += ["--batch", str(args.batch)]
    if args.iters:
        cmd += ["--iters", str(args.iters)]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if res.returncode != 0:
        sys.exit("perf_torch: the PyTorch worker failed (is python3-torch installed?):\n" +
                 res.stderr.strip())
    return json.loads(res.stdout.strip().splitlines()[-1])


def run_bench(args):
    cmd = [args.bench, "perf", "--json", "--arch", args.arch, "--threads", "2"]
    if args.batch:
        cmd += ["--batch", str(args.batch)]
    if args.iters:
        cmd += ["--iters", str(args.iters)]
    if not os.access(args.bench, os.X_OK):
        sys.exit(f"perf_torch: --bench {args.bench} is not an executable (build fsbench first)")
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        sys.exit(f"perf_torch: {args.bench} perf failed:\n" + res.stderr.strip())
    return json.loads(res.stdout)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bench", default=os.path.join(HERE, "..", "build", "bench"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--arch", default="all", choices=["conv4", "res12", "all"])
    ap.add_argument("--batch", type=int, default=0)
    ap.add_argument("--iters", type=int, default=0)
    ap.add_argument("--no-tcmalloc", action="store_true")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        torch_worker(args.arch, args.batch, args.iters)
        return
    torch_runs, bench_runs = {}, {}
    rss = []
    for r in range(args.rounds):
        t = run_torch(args)
        for w in t["workloads"]:
            torch_runs.setdefault(w["name"], []).append(w["img_s"])
        b = run_bench(args)
        rss.append(b["peak_rss_mb"])
        for w in b["workloads"]:
            bench_runs.setdefault(w["name"], []).append(w["img_s"])
        print(f"round {r + 1}: torch " +
              " ".join(f"{w['name']}={w['img_s']:.1f}" for w in t["workloads"]) +
              " | fsbench " + " ".join(f"{w['name']}={w['img_s']:.1f}" for w in b["workloads"]),
              flush=True)
    print(f"\nPyTorch {t['torch']} threads {t['threads']} tcmalloc {t['tcmalloc']} channels_last; "
          f"fsbench openblas core {b['openblas_core']}, peak RSS {max(rss):.0f} MB")
    print(f"{'workload':<14} {'PyTorch img/s':>14} {'fsbench img/s':>14} {'ratio':>7}   (medians of {args.rounds})")
    for name in bench_runs:
        tm = statistics.median(torch_runs[name])
        bm = statistics.median(bench_runs[name])
        print(f"{name:<14} {tm:>14.1f} {bm:>14.1f} {bm / tm:>6.2f}x")


if __name__ == "__main__":
    main()
