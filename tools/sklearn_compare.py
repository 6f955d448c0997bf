#!/usr/bin/python3
"""sklearn_compare.py - fsbench's frozen-feature methods against scikit-learn on the same episodes.

Writes a synthetic feature file (Gaussian clusters) in the fsbench tensor-file format, runs
`bench perf-methods --dump` on it, then fits scikit-learn's LinearSVC (squared hinge, primal,
same C, intercept_scaling=1, tol = fsbench's eps), LogisticRegression(solver='liblinear',
primal, tol = eps), NearestCentroid and
1-nearest-neighbour on exactly the dumped episodes (same normalisation), and prints per-episode
time ratios and prediction agreement per method and shot.

Needs Debian's python3 (numpy, scikit-learn 1.2) and libxxhash (for the file checksum).
A peer measurement only: nothing in the build or the tests uses it.

  tools/sklearn_compare.py --bench build/bench [--episodes 200] [--shots 1,5,10,30] [--C 1]
                           [--dim 64 | --features FILE.fsbt] [--keep]
"""
import os

# one thread each, like fsbench's per-episode timings (set before numpy/sklearn load)
for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import ctypes  # noqa: E402
import struct  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

# ---- tensor file (include/fsb/tensorfile.h, docs/formats.md), version 1 ------------------

_xxh = ctypes.CDLL("libxxhash.so.0")
_xxh.XXH3_64bits.restype = ctypes.c_uint64
_xxh.XXH3_64bits.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
MAGIC = b"FSBTENS\0"


def fsbt_write(path, tensors, meta=None):
    """tensors: dict name -> numpy array (float32 or int64); meta: dict str -> str."""
    meta = meta or {}
    out = [MAGIC, struct.pack("<IIII", 1, len(meta), len(tensors), 0)]
    for k, v in meta.items():
        kb, vb = k.encode(), v.encode()
        out += [struct.pack("<I", len(kb)), kb, struct.pack("<I", len(vb)), vb]
    for name, arr in tensors.items():
        arr = np.ascontiguousarray(arr)
        dtype = {np.dtype(np.float32): 0, np.dtype(np.int64): 1}[arr.dtype]
        nb = name.encode()
        out += [struct.pack("<I", len(nb)), nb, struct.pack("<II", dtype, arr.ndim)]
        out += [struct.pack("<Q", d) for d in arr.shape]
        out.append(arr.astype(arr.dtype.newbyteorder("<")).tobytes())
    body = b"".join(out)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(body + struct.pack("<Q", _xxh.XXH3_64bits(body, len(body))))
    os.replace(tmp, path)


def fsbt_read(path):
    """Returns (tensors dict, meta dict); verifies magic, version and checksum."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != MAGIC or len(data) < 32:
        raise ValueError(f"{path}: not an fsbench tensor file")
    body, (crc,) = data[:-8], struct.unpack("<Q", data[-8:])
    if _xxh.XXH3_64bits(body, len(body)) != crc:
        raise ValueError(f"{path}: checksum mismatch")
    version, n_meta, n_tensors, _ = struct.unpack_from("<IIII", data, 8)
    if version != 1:
        raise ValueError(f"{path}: version {version}")
    pos, meta, tensors = 24, {}, {}

    def take(n):
        nonlocal pos
        pos += n
        return data[pos - n:pos]

    for _ in range(n_meta):
        k = take(struct.unpack("<I", take(4))[0]).decode()
        meta[k] = take(struct.unpack("<I", take(4))[0]).decode()
    for _ in range(n_tensors):
        name = take(struct.unpack("<I", take(4))[0]).decode()
        dtype, ndim = struct.unpack("<II", take(8))
        dims = struct.unpack("<" + "Q" * ndim, take(8 * ndim))
        dt = np.dtype("<f4") if dtype == 0 else np.dtype("<i8")
        n = int(np.prod(dims)) if ndim else 1
        tensors[name] = np.frombuffer(take(n * dt.itemsize), dt).reshape(dims)
    return tensors, meta


# ---- the comparison ---------------------------------------------------------------------


def synthetic(path, classes, per_class, dim, seed):
    """Gaussian clusters, overlapping enough that the methods disagree on some queries."""
    rng = np.random.default_rng(seed)
    means = rng.normal(0.0, 0.45, size=(classes, dim))
    feats = means[np.repeat(np.arange(classes), per_class)] + rng.normal(
        0.0, 1.0, size=(classes * per_class, dim))
    feats = np.maximum(feats + 0.5, 0.0)  # non-negative like ReLU/avg-pool embeddings
    labels = np.repeat(np.arange(classes, dtype=np.int64), per_class)
    fsbt_write(path, {"features": feats.astype(np.float32), "labels": labels},
               {"source": f"sklearn_compare.py synthetic seed {seed}"})


def normalise(x, norm, mean):
    x = x.astype(np.float64)
    if norm == "un":
        return x
    if norm == "cl2n":
        x = x - mean
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(n > 0, n, 1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bench", default="build/bench")
    ap.add_argument("--features", help="an existing feature file (default: synthetic)")
    ap.add_argument("--dim", type=int, default=64, help="synthetic feature dimension")
    ap.add_argument("--episodes", type=int, default=200)
    ap.add_argument("--shots", default="1,5,10,30")
    ap.add_argument("--way", type=int, default=5)
    ap.add_argument("--query", type=int, default=15)
    ap.add_argument("--C", type=float, default=1.0)
    ap.add_argument("--eps", type=float, default=0.01, help="fsbench's liblinear tolerance")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    a = ap.parse_args()

    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier, NearestCentroid
    from sklearn.svm import LinearSVC

    tmp = tempfile.mkdtemp(prefix="fsb_sklearn_")
    feat_path = a.features or os.path.join(tmp, "synthetic.fsbt")
    if not a.features:
        synthetic(feat_path, 20, 600, a.dim, a.seed)
    dump = os.path.join(tmp, "dump.fsbt")
    cmd = [a.bench, "perf-methods", "--features", feat_path, "--episodes", str(a.episodes),
           "--shots", a.shots, "--way", str(a.way), "--query", str(a.query), "--methods",
           "1nn,protonet,svm,logreg", "--C", str(a.C), "--eps", str(a.eps), "--seed",
           str(a.seed), "--threads", "1", "--dump", dump]
    print("$", " ".join(cmd))
    sys.stdout.flush()
    subprocess.run(cmd, check=True)

    tens, _ = fsbt_read(feat_path)
    feats, labels = tens["features"], tens["labels"]
    mean = tens["base_mean"].astype(np.float64) if "base_mean" in tens else feats.astype(
        np.float64).mean(axis=0)
    d, meta = fsbt_read(dump)
    way, query = int(meta["way"]), int(meta["query"])
    norms = {m: meta["norm." + m] for m in meta["methods"].split(",")}
    peers = {
        # the same liblinear solvers and tolerance as fsbench (primal L2-loss SVC, primal LR,
        # eps), so that the ratio measures the implementation, not a tighter problem
        "svm": lambda: LinearSVC(loss="squared_hinge", dual=False, C=a.C, intercept_scaling=1,
                                 tol=a.eps, max_iter=10000),
        "logreg": lambda: LogisticRegression(solver="liblinear", dual=False, C=a.C, tol=a.eps),
        "protonet": lambda: NearestCentroid(),
        "1nn": lambda: KNeighborsClassifier(n_neighbors=1, algorithm="brute"),
    }
    print(f"\nscikit-learn on the same {a.episodes} episodes per shot ({way}-way, {query} "
          f"queries/class); times per episode (fit + predict), one thread each")
    print(f"{'method':<9} {'shot':>4} {'norm':>5} {'fsbench ms':>11} {'sklearn ms':>11} "
          f"{'speed-up':>9} {'agreement %':>12} {'acc fsb %':>10} {'acc skl %':>10}")
    for K in [int(s) for s in meta["shots"].split(",")]:
        sup_idx, qry_idx = d[f"K{K}.support"], d[f"K{K}.query"]
        ys = np.repeat(np.arange(way), K)
        yq = np.repeat(np.arange(way), query)
        for m in ["1nn", "protonet", "svm", "logreg"]:
            ours = d[f"K{K}.pred.{m}"]
            ours_ms = d[f"K{K}.ms.{m}"].astype(np.float64).sum(axis=1).mean()
            agree, total, t_skl, acc_o, acc_s = 0, 0, 0.0, 0, 0
            for e in range(sup_idx.shape[0]):
                xs = normalise(feats[sup_idx[e]], norms[m], mean)
                xq = normalise(feats[qry_idx[e]], norms[m], mean)
                t0 = time.perf_counter()
                clf = peers[m]().fit(xs, ys)
                p = clf.predict(xq)
                t_skl += time.perf_counter() - t0
                agree += int((p == ours[e]).sum())
                total += p.size
                acc_o += int((ours[e] == yq).sum())
                acc_s += int((p == yq).sum())
            skl_ms = 1e3 * t_skl / sup_idx.shape[0]
            print(f"{m:<9} {K:>4} {norms[m]:>5} {ours_ms:>11.4f} {skl_ms:>11.4f} "
                  f"{skl_ms / max(ours_ms, 1e-9):>8.1f}x {100 * agree / total:>12.2f} "
                  f"{100 * acc_o / total:>10.2f} {100 * acc_s / total:>10.2f}")
    if a.keep:
        print("kept", tmp)
    else:
        for f in os.listdir(tmp):
            os.remove(os.path.join(tmp, f))
        os.rmdir(tmp)


if __name__ == "__main__":
    main()
