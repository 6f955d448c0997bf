#!/usr/bin/python3
"""episodes_ref.py - an independent reimplementation of docs/episodes.md (the sampler and
the manifest rows, not the hash: Debian's python3 has no xxhash), written from the spec
to derive the golden values in tests/test_episodes.c and the worked example in the doc.

usage: tools/episodes_ref.py SEED FINGERPRINT_HEX WAY MAX_SHOT QUERY EPISODES CLASS:COUNT...
       tools/episodes_ref.py SEED FINGERPRINT_HEX WAY MAX_SHOT QUERY EPISODES --csv SPLIT.csv
Prints the manifest rows (column row + data rows) for a split whose class k is named as
given (the names must be listed in bytewise order) with images <class>_<j>.jpg, j = 000..,
or for a Ravi CSV listing ("filename,label"), put in canonical order here.
The fingerprint is taken as given (computing XXH3-64 needs the xxhash module).
"""
import sys

M64 = (1 << 64) - 1
M32 = (1 << 32) - 1


def mix64(x):
    x = (x + 0x9E3779B97F4A7C15) & M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & M64
    return x ^ (x >> 31)


def philox(ctr, key):
    c0, c1, c2, c3 = ctr
    k0, k1 = key
    for rnd in range(10):
        if rnd:
            k0 = (k0 + 0x9E3779B9) & M32
            k1 = (k1 + 0xBB67AE85) & M32
        p0 = 0xD2511F53 * c0
        p1 = 0xCD9E8D57 * c2
        c0, c1, c2, c3 = ((p1 >> 32) ^ c1 ^ k0) & M32, p1 & M32, ((p0 >> 32) ^ c3 ^ k1) & M32, p0 & M32
    return [c0, c1, c2, c3]


class Rng:
    def __init__(self, key, stream):
        self.key = (key & M32, key >> 32)
        self.stream = (stream & M32, stream >> 32)
        self.block = 0
        self.buf = []

    def u32(self):
        if not self.buf:
            ctr = (self.block & M32, self.block >> 32, self.stream[0], self.stream[1])
            self.buf = philox(ctr, self.key)
            self.block += 1
        return self.buf.pop(0)

    def below(self, n):
        threshold = ((1 << 32) - n) % n
        while True:
            m = self.u32() * n
            if (m & M32) >= threshold:
                return m >> 32


def partial_shuffle(rng, n, m):
    a = list(range(n))
    for j in range(m):
        pick = j + rng.below(n - j)
        a[j], a[pick] = a[pick], a[j]
    return a[:m]


def key_of(seed, fingerprint, way, max_shot, query):
    k = mix64(seed ^ 0x455049534F444531)
    for v in (fingerprint, way, max_shot, query):
        k = mix64(k ^ v)
    return k


def episode(key, index, counts, starts, way, max_shot, query):
    rng = Rng(key, index)
    classes = partial_shuffle(rng, len(counts), way)
    sup, qry = [], []
    for k in classes:
        order = partial_shuffle(rng, counts[k], query + max_shot)
        qry.append([starts[k] + j for j in order[:query]])
        sup.append([starts[k] + j for j in order[query:]])
    return classes, sup, qry


def main():
    seed, fp, way, max_shot, query, episodes = sys.argv[1:7]
    seed, fp = int(seed), int(fp, 16)
    way, max_shot, query, episodes = int(way), int(max_shot), int(query), int(episodes)
    names, counts, starts, files = [], [], [], []
    specs = sys.argv[7:]
    if specs[:1] == ["--csv"]:
        by_class = {}
        with open(specs[1], "rb") as f:
            for line in f.read().decode().splitlines()[1:]:
                if line.strip():
                    fname, label = line.strip().split(",")
                    by_class.setdefault(label, []).append(fname)
        specs = []
        for name in sorted(by_class, key=lambda n: n.encode()):
            names.append(name)
            starts.append(len(files))
            counts.append(len(by_class[name]))
            files += sorted(by_class[name], key=lambda n: n.encode())
    for spec in specs:
        name, count = spec.split(":")
        names.append(name)
        starts.append(len(files))
        counts.append(int(count))
        files += ["%s_%03d.jpg" % (name, j) for j in range(int(count))]
    key = key_of(seed, fp, way, max_shot, query)
    print("# key=%016x" % key)
    print("episode,label,class,role,rank,file")
    for e in range(episodes):
        classes, sup, qry = episode(key, e, counts, starts, way, max_shot, query)
        for c, k in enumerate(classes):
            for role, imgs in (("support", sup[c]), ("query", qry[c])):
                for r, i in enumerate(imgs):
                    print("%d,%d,%s,%s,%d,%s" % (e, c, names[k], role, r, files[i]))


if __name__ == "__main__":
    main()
