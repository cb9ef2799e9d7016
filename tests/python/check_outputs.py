"""Independent check of a seispipe output directory with real numpy.

usage: check_outputs.py OUTDIR [--flip]

* every file listed in manifest.json loads with np.load, has the listed shape,
  dtype, size and SHA-256;
* with --flip: every output sample equals its input (found through the
  manifest's provenance) mirrored with numpy when the flip stage says it was
  applied (x[::-1, :, ::-1] for seismic, y[..., ::-1] for velocity), and equals
  the input unchanged otherwise.

Prints one JSON line with counts; exits non-zero on the first mismatch.
"""
import hashlib
import json
import os
import sys

import numpy as np


def main():
    out = sys.argv[1]
    flip = "--flip" in sys.argv[2:]
    with open(os.path.join(out, "manifest.json")) as f:
        m = json.load(f)
    files = 0
    checked = 0
    flipped = 0
    root = m["input_root"]
    inputs = {i["path"]: i for i in m["inputs"]}
    for shard in m["shards"]:
        arrays = []
        for fr in shard["files"]:
            p = os.path.join(out, fr["path"])
            a = np.load(p)
            assert list(a.shape) == fr["shape"], (p, a.shape, fr["shape"])
            assert a.dtype.str == fr["dtype"], (p, a.dtype.str, fr["dtype"])
            assert os.path.getsize(p) == fr["bytes"], p
            with open(p, "rb") as fh:
                assert hashlib.sha256(fh.read()).hexdigest() == fr["sha256"], p
            arrays.append(a)
            files += 1
        pf = shard["provenance"]
        p = os.path.join(out, pf["path"])
        with open(p, "rb") as fh:
            raw = fh.read()
        assert len(raw) == pf["bytes"] and hashlib.sha256(raw).hexdigest() == pf["sha256"], p
        provenance = [json.loads(line) for line in raw.decode().splitlines()]
        files += 1
        assert arrays[0].shape[0] == shard["samples"] == len(provenance)
        if not flip:
            continue
        for k, prov in enumerate(provenance):
            inp = inputs[prov["input"]]
            x = np.load(os.path.join(root, prov["input"]), mmap_mode="r")
            xi = x if x.ndim == 3 else x[prov["input_index"]]
            applied = any(s["type"] == "flip" and s["applied"] for s in prov["stages"])
            want = xi[::-1, :, ::-1] if applied else xi
            got = arrays[0][k]
            want = np.asarray(want, dtype=got.dtype)
            assert np.array_equal(got, want), ("seismic", shard["index"], k, prov)
            if len(arrays) > 1:
                y = np.load(os.path.join(root, inp["label"]), mmap_mode="r")[prov["input_index"]]
                y = y.reshape(1, 70, 70)
                wy = y[..., ::-1] if applied else y
                assert np.array_equal(arrays[1][k], np.asarray(wy, dtype=got.dtype)), ("velocity", shard["index"], k)
            flipped += int(applied)
            checked += 1
    print(json.dumps({"files": files, "checked": checked, "flipped": flipped}))


if __name__ == "__main__":
    main()
