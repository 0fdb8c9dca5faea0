"""Scale-out: the local engine vs Ray on the same CPUs, and the memory of scoring 1M x 384 vectors.

1. Throughput, local engine vs ``engine: ray`` (a local Ray instance with ``--cpus`` CPUs, 2 by
   default): embedding the bundled pydocs texts with MiniLM (the model load included, as a run
   pays it), and scoring (prototypes + density: k-means on a sample, then every shard assigned)
   ``--score-n`` random vectors streamed from a store. Both engines' outputs are checked equal.
2. Peak resident memory of scoring ``--n`` x ``--dim`` random float32 vectors (1M x 384 by default,
   1.5 GB on disk) written to an EmbeddingStore and streamed back shard by shard, each engine's
   driver in a fresh process (target: under 4 GB). Ray's workers hold one shard each on top.

    python benchmarks/scale.py [--n 1000000] [--dim 384] [--score-n N] [--cpus 2] [--repeats 2] [--skip-ray]
    python benchmarks/scale.py --n 20000 --texts 200 --repeats 1     # a quick check
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

TARGET_GB = 4.0

PEAK = """
import json, resource, sys, time

def peak_mb():
    # VmHWM: this process's own high-water mark (ru_maxrss would include the parent's memory at fork)
    try:
        with open("/proc/self/status") as fh:
            return next(int(line.split()[1]) for line in fh if line.startswith("VmHWM")) / 1024
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

engine = sys.argv[2]
if engine == "ray":
    import ray
    ray.init(num_cpus=int(sys.argv[3]), include_dashboard=False, logging_level="error", log_to_driver=False)
from datamix.data import EmbeddingStore
from datamix.prune import score_stores
t0 = time.perf_counter()
tables = score_stores({"random": EmbeddingStore(sys.argv[1])}, metrics=["prototypes", "density"], engine=engine)
seconds = time.perf_counter() - t0
print(json.dumps({"peak_rss_mb": peak_mb(), "seconds": seconds, "rows": len(tables["random"])}))
"""


def write_random_store(path: Path, n: int, dim: int, shard_size: int, seed: int = 0):
    """``n`` x ``dim`` standard-normal float32 vectors, written shard by shard (never all in memory)."""
    import numpy as np

    from datamix.data.store import StoreWriter

    rng = np.random.default_rng(seed)
    w = StoreWriter(path, model="random", n_total=n, shard_size=shard_size, meta={"source": "random"})
    for k in range(w.n_shards):
        start, stop = w.bounds(k)
        X = rng.standard_normal((stop - start, dim), dtype=np.float32)
        w.write(k, np.array([f"r{i}" for i in range(start, stop)]), X, f"seed{seed}:{k}")
    return w.finish()


def peak_rss(store: Path, engine: str, cpus: int) -> dict:
    out = subprocess.run([sys.executable, "-c", PEAK, str(store), engine, str(cpus)], check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def timed(fn):
    t0 = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="vectors in the memory test")
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--score-n", type=int, default=None, help="vectors in the scoring throughput test (default: --n)")
    ap.add_argument("--texts", type=int, default=0, help="pydocs texts to embed (default 0: all the sources')")
    ap.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray instance")
    ap.add_argument("--shard-size", type=int, default=16384, help="rows per store shard of the random vectors")
    ap.add_argument("--text-shard-size", type=int, default=128)
    ap.add_argument("--skip-ray", action="store_true", help="local engine only")
    ap.add_argument("--repeats", type=int, default=2, help="timed passes of each engine; the best counts")
    args = ap.parse_args()

    import numpy as np

    from datamix.data import Source
    from datamix.data.bundled import load_scenario
    from datamix.embed import embed_sources
    from datamix.engine import get_engine
    from datamix.index import AssignShards, l2_normalize
    from datamix.prune import score_stores
    from datamix.prune.scoring import default_n_clusters

    engines = ["local"] if args.skip_ray else ["local", "ray"]
    if not args.skip_ray:
        import ray

        ray.init(num_cpus=args.cpus, include_dashboard=False, logging_level="error", log_to_driver=False)
    rows = []

    def best_of(stage, n, run):
        """Time ``run(engine)`` ``--repeats`` times per engine, engines alternating; keep the best."""
        best, out = {}, {}
        for _ in range(args.repeats):
            for engine in engines:
                out[engine], sec = timed(lambda: run(engine))
                best[engine] = min(best.get(engine, float("inf")), sec)
        rows.extend((stage, engine, n, best[engine]) for engine in engines)
        return out

    with tempfile.TemporaryDirectory(prefix="datamix-scale-") as tmp:
        tmp = Path(tmp)
        # ---- embed: bundled text
        sources = load_scenario("pydocs", seed=0).sources
        if args.texts:
            per = -(-args.texts // len(sources))
            sources = [Source(name=s.name, dataset=s.dataset.select(range(min(per, len(s)))), field=s.field,
                              origin=s.origin) for s in sources]
        n_texts = sum(len(s) for s in sources)

        def embed_with(engine):
            stores = embed_sources(sources, "minilm", stores={s.name: tmp / f"text-{engine}" / s.name for s in sources},
                                   shard_size=args.text_shard_size, device="cpu", progress=False, engine=engine,
                                   overwrite=True)
            return np.concatenate([stores[s.name].load() for s in sources])

        embedded = best_of("embed MiniLM, pydocs texts", n_texts, embed_with)
        same_embed = all(np.array_equal(embedded[e], embedded["local"]) for e in engines)

        # ---- score: random vectors streamed from a store
        (store, sec_write) = timed(lambda: write_random_store(tmp / "random", args.n, args.dim, args.shard_size))
        score_store = store
        n_score = args.score_n or args.n
        if n_score != args.n:
            score_store = write_random_store(tmp / "random-score", n_score, args.dim, args.shard_size, seed=1)
        k = default_n_clusters(n_score, None)
        scored = best_of(f"score prototypes+density, k={k}", n_score, lambda engine: score_stores(
            {"random": score_store}, metrics=["prototypes", "density"], engine=engine)["random"])
        same_score = all(scored[e].equals(scored["local"]) for e in engines)
        # the part that runs on the workers: every shard assigned to k centroids (k-means itself is
        # trained on the driver, the same for both engines)
        C = l2_normalize(np.random.default_rng(2).standard_normal((k, args.dim), dtype=np.float32))
        tasks = [{"source": "random", "shard": j} for j in range(len(score_store.shards))]
        assigned = best_of(f"  of which: assign shards to {k} centroids", n_score, lambda engine: [
            r["shard"] for r in get_engine(engine).map_shards(
                AssignShards, tasks, fn_kwargs={"stores": {"random": score_store.path}, "centroids": C},
                stage="score")])
        assert all(sorted(v) == list(range(len(tasks))) for v in assigned.values())
        if not args.skip_ray:
            ray.shutdown()

        print(f"throughput on {args.cpus} CPUs, best of {args.repeats} (local engine: this process; ray: a local "
              f"Ray instance with {args.cpus} CPUs, 1 CPU per actor; model load and actor start included)")
        print(f"{'stage':<44}{'engine':<8}{'samples':>10}{'seconds':>10}{'samples/s':>11}{'ray/local':>11}")
        local_rate = {}
        for stage, engine, n, sec in rows:
            rate = n / sec
            if engine == "local":
                local_rate[stage] = rate
            ratio = f"{rate / local_rate[stage]:>11.2f}" if engine != "local" else f"{'':>11}"
            print(f"{stage:<44}{engine:<8}{n:>10}{sec:>10.1f}{rate:>11.0f}{ratio}")
        if not args.skip_ray:
            print(f"outputs equal across engines: embeddings {'yes' if same_embed else 'NO'}, "
                  f"scores {'yes' if same_score else 'NO'}")

        print(f"\npeak RSS of scoring {args.n:,} x {args.dim} float32 streamed from a store "
              f"({args.n * args.dim * 4 / 2**30:.2f} GiB on disk, {len(store.shards)} shards of {args.shard_size}; "
              f"written in {sec_write:.0f} s), fresh process each")
        print(f"{'engine':<10}{'peak RSS MB':>12}{'seconds':>10}   target < {TARGET_GB:g} GB")
        for engine in engines:
            r = peak_rss(tmp / "random", engine, args.cpus)
            ok = r["peak_rss_mb"] / 1024 < TARGET_GB
            who = " (driver; each worker holds one shard)" if engine == "ray" else ""
            print(f"{engine:<10}{r['peak_rss_mb']:>12.0f}{r['seconds']:>10.1f}   "
                  f"{'yes' if ok else 'NO'}: {r['peak_rss_mb'] / 1024:.2f} GB{who}")


if __name__ == "__main__":
    main()
