"""Embedding throughput of datamix's embed stage vs calling SentenceTransformer.encode directly.

Both embed the same texts with the same model, batch size and device, in this one run; the table
gives texts/s for each and their ratio (target >= 0.9). Then the peak resident memory of the whole
embed stage, each in a fresh process, for two corpus sizes read from a jsonl file on disk: it should
grow with the shard/batch, not with the corpus.

    python benchmarks/embed_throughput.py [--n 4000] [--device auto] [--batch-size 64]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from datamix.data.bundled import stdlib_docstrings  # noqa: E402


def corpus(n: int) -> list[str]:
    """``n`` real texts: standard-library docstrings, numbered so that every text is distinct."""
    base, _ = stdlib_docstrings()
    return [f"{base[i % len(base)]} [{i}]" for i in range(n)]


PEAK = """
import json, resource, sys
from datamix.data import Source
from datamix.embed import embed
src = Source.from_files("c", sys.argv[1], field="text", cache_dir=sys.argv[3])
embed(src, "minilm", store=sys.argv[2], shard_size=int(sys.argv[4]), batch_size=int(sys.argv[5]),
      device=sys.argv[6], progress=False)
print(json.dumps({"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def peak_rss(n: int, tmp: Path, shard_size: int, batch_size: int, device: str) -> float:
    data = tmp / f"corpus{n}.jsonl"
    data.write_text("".join(json.dumps({"text": t}) + "\n" for t in corpus(n)))
    out = subprocess.run([sys.executable, "-c", PEAK, str(data), str(tmp / f"store{n}"), str(tmp / "cache"),
                          str(shard_size), str(batch_size), device], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["peak_rss_mb"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=4000, help="texts in the throughput test")
    ap.add_argument("--batch-size", type=int, default=None, help="default: 64 on CPU, 512 on CUDA")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--shard-size", type=int, default=4096)
    ap.add_argument("--repeats", type=int, default=2, help="timed passes of each; the best counts")
    args = ap.parse_args()

    from datamix.data import Source
    from datamix.embed import TextEncoder, embed

    enc = TextEncoder("minilm", device=args.device, batch_size=args.batch_size)
    texts = corpus(args.n)
    src = Source.from_arrays("bench", texts)
    enc.encode(texts[:256])  # warm-up
    best = {"direct": float("inf"), "datamix": float("inf")}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            t0 = time.perf_counter()
            enc.model.encode(texts, batch_size=enc.batch_size, convert_to_numpy=True, show_progress_bar=False)
            best["direct"] = min(best["direct"], time.perf_counter() - t0)
            t0 = time.perf_counter()
            embed(src, enc, store=Path(tmp) / f"s{r}", shard_size=args.shard_size, progress=False)
            best["datamix"] = min(best["datamix"], time.perf_counter() - t0)
        rate = {k: args.n / v for k, v in best.items()}
        print(f"MiniLM on {enc.device}, batch {enc.batch_size}, {args.n} texts, best of {args.repeats}")
        print(f"{'path':<34}{'texts/s':>10}")
        print(f"{'SentenceTransformer.encode':<34}{rate['direct']:>10.0f}")
        print(f"{'datamix embed (store, shards)':<34}{rate['datamix']:>10.0f}")
        print(f"{'ratio datamix / direct':<34}{rate['datamix'] / rate['direct']:>10.2f}   (target >= 0.9)")

        device = enc.device
        sizes = (max(args.n // 4, 1000), args.n)
        print(f"\npeak RSS of a whole embed run (fresh process, shard {args.shard_size // 4})")
        print(f"{'corpus texts':<34}{'peak RSS MB':>12}")
        peaks = [peak_rss(n, Path(tmp), args.shard_size // 4, enc.batch_size, device) for n in sizes]
        for n, p in zip(sizes, peaks):
            print(f"{n:<34}{p:>12.0f}")
        print(f"{'ratio (corpus x' + str(sizes[1] // sizes[0]) + ')':<34}{peaks[1] / peaks[0]:>12.2f}   "
              "(~1 = memory follows the shard, not the corpus)")


if __name__ == "__main__":
    main()
