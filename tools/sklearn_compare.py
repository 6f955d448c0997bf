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
                           [--dim 64 | --features FILE.fsbt [--data ROOT] [--split NAME]
                           [--base-features TRAIN.fsbt]] [--keep]
  tools/sklearn_compare.py --check-features FILE.fsbt [--data ROOT] [--split NAME]
                           [--base-features TRAIN.fsbt]

--features takes a file with tensors 'features' [N, dim] and 'labels' [N] (what
`bench perf-methods` reads), or the harness's own feature cache: the
features-<split>-<16 hex>.fsbt that `bench run` leaves beside the packed images
(.fsbench-cache/ under the dataset, include/fsb/features.h), which holds 'features' only, its
rows in the split's canonical order. Its labels are rebuilt:
  - with --data ROOT (--split NAME, default: the split named in the file name) from the split
    listing, exactly as include/fsb/dataset.h orders it (Ravi CSV ROOT/split/NAME.csv or
    ROOT/NAME.csv, else class folders ROOT/NAME/...; classes sorted bytewise, images of a class
    contiguous): label = the class's index. A row count that differs from the listing is
    refused. When the packed cache the features came from (its source fingerprint is in the
    file's key) lies beside the file, the listing's split fingerprint, image count and class
    table must match its header too;
  - without --data, from that packed cache's class table.
--base-features (the train split's feature cache) gives the CL2N mean ('base_mean'), as the
harness centres on base-class features; without it the mean of all rows is used.
--check-features loads features and labels the same way and prints their shapes and the
per-class counts, without scikit-learn or bench (a check of that path).
"""
import os

# one thread each, like fsbench's per-episode timings (set before numpy/sklearn load)
for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import ctypes  # noqa: E402
import re  # noqa: E402
import stat  # noqa: E402
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


# ---- labels of the harness's feature cache (include/fsb/features.h, dataset.h, cache.h) -----


class LabelError(ValueError):
    pass


def xxh3(data):
    data = bytes(data)
    return _xxh.XXH3_64bits(data, len(data))


def field_ok(b, is_file):
    """fsb_split_field_ok: non-empty, no control character or comma; a file: no '/', not . / .."""
    if not b or any(c < 0x20 or c == 0x7F or c == 0x2C for c in b):
        return False
    if is_file and (b"/" in b or b in (b".", b"..")):
        return False
    return True


def _ravi_records(csv):
    with open(csv, "rb") as f:
        data = f.read()
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    recs, seen = [], {}
    for line, text in enumerate(data.split(b"\n"), start=1):
        if text.endswith(b"\r"):
            text = text[:-1]
        if line == 1:
            if text != b"filename,label":
                raise LabelError(f"{csv}:1: expected header 'filename,label'")
            continue
        if not text:
            continue
        parts = text.split(b",")
        if len(parts) != 2 or not field_ok(parts[0], True) or not field_ok(parts[1], False):
            raise LabelError(f"{csv}:{line}: malformed row {text[:80]!r}")
        if parts[0] in seen:
            raise LabelError(f"{csv}:{line}: duplicate filename {parts[0].decode(errors='replace')}"
                             f" (also on line {seen[parts[0]]})")
        seen[parts[0]] = line
        recs.append((parts[1], parts[0], line))
    if not recs:
        raise LabelError(f"{csv}: no rows after the header")
    return recs


def _folder_records(root, split):
    top = os.path.join(os.fsencode(root), os.fsencode(split))
    recs = []

    def walk(rel, ancestors):
        folder = os.path.join(top, rel) if rel else top
        st = os.stat(folder)
        if (st.st_dev, st.st_ino) in ancestors:
            raise LabelError(f"{os.fsdecode(folder)}: symbolic link loop")
        ancestors = ancestors | {(st.st_dev, st.st_ino)}
        for name in sorted(n for n in os.listdir(folder) if not n.startswith(b".")):
            full = os.path.join(folder, name)
            try:
                sb = os.stat(full)
            except OSError as e:
                raise LabelError(f"{os.fsdecode(full)}: cannot be followed: {e.strerror}") from None
            if stat.S_ISDIR(sb.st_mode):
                walk(os.path.join(rel, name) if rel else name, ancestors)
            elif stat.S_ISREG(sb.st_mode) and name.rfind(b".") > 0 and \
                    name[name.rfind(b"."):].lower() in (b".jpg", b".jpeg", b".png"):
                if not rel:
                    raise LabelError(f"{os.fsdecode(full)}: image directly in the split folder")
                if not field_ok(rel, False) or not field_ok(name, True):
                    raise LabelError(f"{os.fsdecode(full)}: a comma or control character in the "
                                     "class or file name")
                recs.append((rel, name, 0))

    walk(b"", frozenset())
    if not recs:
        raise LabelError(f"{os.fsdecode(top)}: no images (*.jpg, *.jpeg, *.png) in class folders")
    return recs


def split_listing(root, split):
    """The split as include/fsb/dataset.h lists it: (source, class names, labels [N] int64,
    fingerprint). Canonical order: classes sorted bytewise, a class's images contiguous and
    sorted by basename; the fingerprint is XXH3-64 of '<class>\t<basename>\n' in that order."""
    if not os.path.isdir(root):
        raise LabelError(f"{root}: dataset root not found (not a folder)")
    csv1 = os.path.join(root, "split", split + ".csv")
    csv2 = os.path.join(root, split + ".csv")
    folder = os.path.join(root, split)
    if os.path.isfile(csv1) or os.path.isfile(csv2):
        source = csv1 if os.path.isfile(csv1) else csv2
        recs = _ravi_records(source)
    elif os.path.isdir(folder):
        source = folder
        recs = _folder_records(root, split)
    else:
        raise LabelError(f"{root}: split '{split}' not found (looked for {csv1}, {csv2} and "
                         f"{folder}/)")
    recs.sort()  # (class, basename, line): bytewise, like strcmp
    classes = sorted({r[0] for r in recs})
    index = {c: i for i, c in enumerate(classes)}
    labels = np.array([index[r[0]] for r in recs], dtype=np.int64)
    fp = xxh3(b"".join(c + b"\t" + b + b"\n" for c, b, _ in recs))
    return source, [c.decode("utf-8", "replace") for c in classes], labels, fp


def pack_header(path):
    """The header of a packed cache (include/fsb/cache.h, version 1)."""
    with open(path, "rb") as f:
        head = f.read(56)
        if len(head) < 56 or head[:8] != b"FSBPACK\0":
            raise LabelError(f"{path}: not a packed cache")
        version, header_bytes, split_fp, source_fp, w, h, ch, n_img, n_cls, name_bytes = \
            struct.unpack_from("<IIQQIIIIII", head, 8)
        table = f.read(16 * n_cls)
        names = f.read(name_bytes)
    if version != 1 or len(table) != 16 * n_cls or len(names) != name_bytes:
        raise LabelError(f"{path}: unsupported or truncated packed cache")
    classes = []
    for c in range(n_cls):
        start, count, off, length = struct.unpack_from("<IIII", table, 16 * c)
        classes.append((names[off:off + length].decode("utf-8", "replace"), start, count))
    return dict(split_fp=split_fp, source_fp=source_fp, size=w, n_images=n_img, classes=classes)


def find_pack(feat_path, split, key):
    """The packed cache beside feat_path whose source fingerprint is the key's, or None."""
    fields = dict(t.split("=", 1) for t in key.split()[1:] if "=" in t)
    if "source" not in fields:
        return None, None
    want = int(fields["source"], 16)
    folder = os.path.dirname(os.path.abspath(feat_path))
    prefix = f"{split}-{fields.get('size', '')}-"
    for name in sorted(os.listdir(folder)):
        if name.startswith(prefix) and name.endswith(".fsbpack"):
            try:
                hdr = pack_header(os.path.join(folder, name))
            except (LabelError, OSError):
                continue
            if hdr["source_fp"] == want:
                return os.path.join(folder, name), hdr
    return None, None


def load_features(path, data=None, split=None, base_features=None):
    """(features [N, dim] f32, labels [N] i64, base_mean [dim] f32 or None, class names or None,
    notes) of a feature file: a labelled one as is, the harness's cache with its labels rebuilt
    (see the top). Raises LabelError naming what does not match."""
    tens, meta = fsbt_read(path)
    if "features" not in tens or tens["features"].ndim != 2:
        raise LabelError(f"{path}: no 'features' [N, dim] tensor")
    feats = tens["features"]
    n = feats.shape[0]
    notes, names = [], None
    if "labels" in tens:
        labels = tens["labels"].astype(np.int64)
        if labels.shape != (n,):
            raise LabelError(f"{path}: 'labels' has shape {labels.shape}, expected ({n},)")
        notes.append("labels: the file's own 'labels' tensor")
    else:
        key = meta.get("key", "")
        if not key.startswith("fsb-features/"):
            raise LabelError(f"{path}: no 'labels' tensor and not an fsbench feature cache "
                             "(no 'key' metadata)")
        m = re.match(r"features-(.+)-[0-9a-f]{16}\.fsbt$", os.path.basename(path))
        if m and split and split != m.group(1):
            raise LabelError(f"{path} holds features of split '{m.group(1)}' (its file name), "
                             f"not '{split}'")
        split = split or (m.group(1) if m else None)
        if not split:
            raise LabelError(f"{path}: give --split NAME (the file name does not say it)")
        pack_path, pack = find_pack(path, split, key)
        if data:
            source, names, labels, fp = split_listing(data, split)
            if len(labels) != n:
                raise LabelError(f"{path} has {n} rows, but split '{split}' of {data} ({source}) "
                                 f"lists {len(labels)} images: these are not its features (or "
                                 "the dataset changed since they were computed)")
            notes.append(f"labels: split '{split}' listed from {source} in canonical order "
                         f"({len(names)} classes, fingerprint {fp:016x})")
            if pack:
                counts = np.bincount(labels, minlength=len(names)).tolist()
                table = [(c, cnt) for c, _, cnt in pack["classes"]]
                if pack["split_fp"] != fp or pack["n_images"] != n or \
                        table != list(zip(names, counts)):
                    raise LabelError(f"{pack_path}: the packed cache these features came from "
                                     f"(split fingerprint {pack['split_fp']:016x}, "
                                     f"{pack['n_images']} images) does not match the listing "
                                     f"(fingerprint {fp:016x}, {len(labels)} images)")
                notes.append(f"checked against {os.path.basename(pack_path)}: same split "
                             "fingerprint, image count and class table")
            else:
                notes.append("(no packed cache with the key's source fingerprint beside the "
                             "file: the row count alone was checked)")
        elif pack:
            if pack["n_images"] != n:
                raise LabelError(f"{path} has {n} rows, {pack_path} {pack['n_images']} images")
            labels = np.empty(n, dtype=np.int64)
            pos = 0
            for i, (_, start, count) in enumerate(pack["classes"]):
                if start != pos:
                    raise LabelError(f"{pack_path}: class table is not contiguous")
                labels[start:start + count] = i
                pos += count
            if pos != n:
                raise LabelError(f"{pack_path}: class table covers {pos} of {n} images")
            names = [c for c, _, _ in pack["classes"]]
            notes.append(f"labels: the class table of {os.path.basename(pack_path)} (the packed "
                         "cache these features came from)")
        else:
            raise LabelError(f"{path} has no labels and its packed cache is not beside it: give "
                             "--data ROOT (and --split NAME) to rebuild them from the split "
                             "listing")
    base_mean = tens.get("base_mean")
    if base_features:
        bt, _ = fsbt_read(base_features)
        bf = bt.get("features")
        if bf is None or bf.ndim != 2 or bf.shape[1] != feats.shape[1]:
            raise LabelError(f"{base_features}: no 'features' [N, {feats.shape[1]}] tensor")
        base_mean = bf.astype(np.float64).mean(axis=0).astype(np.float32)
        notes.append(f"base_mean: the mean of {bf.shape[0]} rows of {base_features}")
    return np.ascontiguousarray(feats, np.float32), labels, base_mean, names, notes


def check_features(a):
    try:
        feats, labels, base_mean, names, notes = load_features(
            a.check_features, a.data, a.split, a.base_features)
    except (LabelError, OSError, ValueError) as e:
        print(f"sklearn_compare: {e}", file=sys.stderr)
        return 1
    print(f"{a.check_features}: features {list(feats.shape)} float32, labels {list(labels.shape)}"
          f" int64, {len(np.unique(labels))} classes"
          + (f", base_mean {list(base_mean.shape)}" if base_mean is not None else ""))
    for note in notes:
        print("  " + note)
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        name = names[c] if names else ""
        print(f"  label {c:>3} {name:<24} {rows.size:>6} rows ({rows[0]}..{rows[-1]})")
    return 0


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
    ap.add_argument("--features", help="an existing feature file (default: synthetic): "
                    "features + labels, or the harness's features-<split>-*.fsbt cache")
    ap.add_argument("--data", help="dataset root, to rebuild a feature cache's labels")
    ap.add_argument("--split", help="split of the feature cache (default: from its file name)")
    ap.add_argument("--base-features", help="the train split's feature cache: CL2N mean")
    ap.add_argument("--check-features", metavar="FILE", help="load FILE's features and labels, "
                    "print shapes and class counts, and stop (no scikit-learn, no bench)")
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
    if a.check_features:
        return check_features(a)

    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier, NearestCentroid
    from sklearn.svm import LinearSVC

    tmp = tempfile.mkdtemp(prefix="fsb_sklearn_")
    feat_path = a.features or os.path.join(tmp, "synthetic.fsbt")
    if not a.features:
        synthetic(feat_path, 20, 600, a.dim, a.seed)
    else:  # the harness's cache has no labels: bench perf-methods gets a labelled copy
        try:
            feats, labels, base_mean, _, notes = load_features(a.features, a.data, a.split,
                                                               a.base_features)
        except (LabelError, OSError, ValueError) as e:
            print(f"sklearn_compare: {e}", file=sys.stderr)
            return 1
        for note in notes:
            print(note)
        feat_path = os.path.join(tmp, "labelled.fsbt")
        out = {"features": feats, "labels": labels}
        if base_mean is not None:
            out["base_mean"] = np.ascontiguousarray(base_mean, np.float32)
        fsbt_write(feat_path, out, {"source": os.path.basename(a.features)})
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
    sys.exit(main())
