"""Cost of the base fingerprint's weight digest against hashing every byte.

    .venv/bin/python -m bench.bench_fingerprint [--gib 1.0] [--tensors 260]

Writes a safetensors file of random bytes (Falcon-7B has ~200 tensors in 14 GB) to a temp dir,
then times ``twin.model.fingerprint``'s uncached digest and a full sha256 of the same file. The
file was just written, so both read from the page cache: the figures are the CPU and syscall cost.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import struct
import tempfile
import time
from pathlib import Path


def write_file(path: Path, gib: float, tensors: int) -> None:
    per = int(gib * 2**30) // tensors // 2 * 2
    header = {f"t{i}": {"dtype": "BF16", "shape": [per // 2], "data_offsets": [i * per, (i + 1) * per]}
              for i in range(tensors)}  # fmt: skip
    raw = json.dumps(header).encode()
    chunk = os.urandom(per)
    with path.open("wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw)
        for _ in range(tensors):
            f.write(chunk)


def main() -> None:
    from twin.model.fingerprint import compute_digest

    ap = argparse.ArgumentParser()
    ap.add_argument("--gib", type=float, default=1.0)
    ap.add_argument("--tensors", type=int, default=260)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "model.safetensors"
        write_file(p, a.gib, a.tensors)
        t = time.perf_counter()
        compute_digest(p, p.stat().st_size)
        sampled = time.perf_counter() - t
        t = time.perf_counter()
        h = hashlib.sha256()
        with p.open("rb") as f:
            while block := f.read(2**24):
                h.update(block)
        full = time.perf_counter() - t
    print(
        f"{a.gib:.2f} GiB, {a.tensors} tensors: weight digest {sampled * 1000:.1f} ms, full sha256 {full:.2f} s"
    )


if __name__ == "__main__":
    main()
