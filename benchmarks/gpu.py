"""GPU paths against the CPU path, in one run (issues 6, 12): k-means, MiniLM embedding, Sinkhorn, LM proxy.

1. Spherical k-means (:func:`datamix.index.spherical_kmeans`) on ``--n`` x 384 random float32
   vectors, k = ``--k``: faiss on the CPU vs the faiss GPU index. Target: 1M x 384, k = 1000 under
   10 s on one H100.
2. MiniLM embedding (:class:`datamix.embed.text.TextEncoder`, the bundled all-MiniLM-L6-v2) of
   ``--texts`` texts from the bundled pydocs scenario (repeated to that count): CPU fp32 vs CUDA fp16
   with batch 512. Target: >= 5,000 texts/s.
3. Label-aware Sinkhorn OT (:func:`datamix.ot.label_ot`, debiased divergence) between two clouds
   of ``--ot-n`` points, 10 classes, 64 features: numpy on the CPU vs POT's torch backend on CUDA.
   Target: 10k x 10k under 2 s.
4. The LM proxy (:func:`datamix.proxy.train_lm`) on the bundled ``pretrain_text`` docstrings, byte
   level, a budget of ``--lm-tokens`` tokens, at the default size (width 64, depth 2, context 64,
   batch 8) and at width 256, depth 4, context 256, batch 32: the CPU with all its threads (fp32)
   vs CUDA (bf16 autocast). The check column is the target's bits per byte.

Without a CUDA device (or a faiss GPU build) only the CPU column is measured and the table says
so. ``--record FILE`` appends the table, the device and the command to a markdown file
(``benchmarks/RESULTS.md``).

    python benchmarks/gpu.py                       # the issue's sizes (the CPU side takes minutes)
    python benchmarks/gpu.py --quick               # 100k vectors, 2,000 texts, 2,000 points
    python benchmarks/gpu.py --record benchmarks/RESULTS.md
    python benchmarks/gpu.py --stages lm --lm-tokens 200000   # the LM proxy alone
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np


def cuda_name() -> str | None:
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None


def faiss_gpu() -> bool:
    import faiss

    return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


def timed(fn, repeats: int = 1) -> tuple[float, object]:
    """Best wall time of ``repeats`` calls (seconds) and the last result."""
    best, out = np.inf, None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def bench_kmeans(n: int, k: int, devices: list[str]) -> dict:
    from datamix.index import spherical_kmeans

    X = np.random.default_rng(0).standard_normal((n, 384), dtype=np.float32)
    rows = {}
    for device in devices:
        seconds, result = timed(lambda d=device: spherical_kmeans(X, k, seed=0, device=d))
        rows[device] = {"seconds": seconds, "rate": n / seconds, "check": float(result.similarity.mean())}
    return rows


def bench_embed(n_texts: int, devices: list[str]) -> dict:
    from datamix.data.bundled import load_scenario
    from datamix.embed.text import TextEncoder

    corpus = [t for s in load_scenario("pydocs", seed=0).sources for t in s.dataset[s.field]]
    texts = (corpus * (n_texts // len(corpus) + 1))[:n_texts]
    rows = {}
    for device in devices:
        encoder = TextEncoder("minilm", device=device, batch_size=512 if device == "cuda" else None)
        encoder.encode(texts[:64])  # load and warm up
        seconds, emb = timed(lambda e=encoder: e.encode(texts))
        rows[device] = {"seconds": seconds, "rate": n_texts / seconds, "check": float(np.linalg.norm(emb, axis=1).mean())}
    return rows


def bench_ot(n: int, devices: list[str], reg_rel: float) -> tuple[float, dict]:
    from datamix.ot import label_ot

    rng = np.random.default_rng(0)
    means = rng.normal(0, 2.0, (10, 64))
    ya, yb = rng.integers(0, 10, n), rng.integers(0, 10, n)
    Xa, Xb = means[ya] + rng.normal(size=(n, 64)), means[yb] + 0.3 + rng.normal(size=(n, 64))
    m = min(n, 1000)  # the mean squared distance from a sample sets the scale of reg
    reg = reg_rel * float(((Xa[:m, None, :] - Xb[None, :m, :]) ** 2).sum(axis=2).mean())
    rows = {}
    for device in devices:
        if device == "cuda":
            import torch

            def run():
                t = [torch.as_tensor(v, device="cuda") for v in (Xa, ya, Xb, yb)]
                value = label_ot(*t, reg=reg).value
                torch.cuda.synchronize()
                return value

            run()  # CUDA context and kernels
        else:
            def run():
                return label_ot(Xa, ya, Xb, yb, reg=reg).value
        seconds, value = timed(run)
        rows[device] = {"seconds": seconds, "rate": n / seconds, "check": float(value)}
    return reg, rows


def bench_lm(n_tokens: int, devices: list[str]) -> dict[str, dict]:
    from datamix.data.bundled import load_scenario
    from datamix.proxy import TokenDocs, train_lm
    from datamix.proxy.tokenizer import load_tokenizer

    tok = load_tokenizer("bytes")
    sc = load_scenario("pretrain_text", seed=0)
    docs = TokenDocs.from_texts(sc.source("docs").samples(), tok).docs()
    target = TokenDocs.from_texts(sc.target.samples(), tok)
    sizes = {"default": dict(width=64, depth=2, context=64, batch_size=8),
             "w256 d4 c256 b32": dict(width=256, depth=4, context=256, batch_size=32, lr=1e-3)}
    tables = {}
    for label, size in sizes.items():
        rows = {}
        for device in devices:
            def run(d=device):
                return train_lm([docs], [n_tokens], target.docs(), vocab_size=tok.vocab_size,
                                target_bytes=int(target.n_bytes.sum()), seed=0, device=d,
                                n_threads=None, **size)
            if device == "cuda":
                run()  # CUDA context and kernels
            seconds, res = timed(run)
            rows[device] = {"seconds": seconds, "rate": res.seen / seconds, "check": res.bits_per_byte}
        tables[label] = rows
    return tables


def _row(label: str, check: str, target_s: float | None, rows: dict) -> str:
    """One markdown row: CPU and GPU seconds, speed-up, the target and each side's check value."""
    cpu, cuda = rows["cpu"], rows.get("cuda")
    target = "" if target_s is None else f"< {target_s:g} s: " + (
        "not measured" if cuda is None else "met" if cuda["seconds"] < target_s else "missed")
    if label.startswith("MiniLM"):
        target = ">= 5,000 texts/s: " + ("not measured" if cuda is None else
                                           "met" if cuda["rate"] >= 5000 else "missed")
        target += f" (CPU {cpu['rate']:.0f}/s" + ("" if cuda is None else f", GPU {cuda['rate']:.0f}/s") + ")"
    if label.startswith("LM proxy"):
        target = f"tokens/s: CPU {cpu['rate']:,.0f}" + ("" if cuda is None else f", GPU {cuda['rate']:,.0f}")
    return (f"| {label} | {cpu['seconds']:.2f} | " + ("—" if cuda is None else f"{cuda['seconds']:.2f}") + " | "
            + ("—" if cuda is None else f"{cpu['seconds'] / cuda['seconds']:.1f}x") + f" | {target} | "
            f"{check} {cpu['check']:.6g} | " + ("—" if cuda is None else f"{check} {cuda['check']:.6g}") + " |")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100k vectors, 2,000 texts, 2,000 OT points")
    parser.add_argument("--n", type=int, default=None, help="vectors for k-means (default 1,000,000)")
    parser.add_argument("--k", type=int, default=1000, help="k-means clusters")
    parser.add_argument("--texts", type=int, default=None, help="texts to embed (default 20,000)")
    parser.add_argument("--ot-n", type=int, default=None, help="points per OT cloud (default 10,000)")
    parser.add_argument("--reg", type=float, default=0.05,
                        help="Sinkhorn regularisation as a share of the mean squared distance")
    parser.add_argument("--lm-tokens", type=int, default=None,
                        help="tokens each LM proxy run trains on (default 1,000,000)")
    parser.add_argument("--stages", nargs="+", choices=["kmeans", "embed", "ot", "lm"],
                        default=["kmeans", "embed", "ot", "lm"], help="stages to measure, in this order")
    parser.add_argument("--record", type=Path, default=None, help="append the table to this markdown file")
    args = parser.parse_args(argv)
    n = args.n or (100_000 if args.quick else 1_000_000)
    n_texts = args.texts or (2_000 if args.quick else 20_000)
    ot_n = args.ot_n or (2_000 if args.quick else 10_000)
    lm_tokens = args.lm_tokens or (100_000 if args.quick else 1_000_000)

    gpu = cuda_name()
    torch_devices = ["cpu"] + (["cuda"] if gpu else [])
    faiss_devices = ["cpu"] + (["cuda"] if gpu and faiss_gpu() else [])
    print(f"device: {gpu or 'no CUDA device'}; faiss GPU: {'yes' if 'cuda' in faiss_devices else 'no'}; "
          f"{platform.processor() or platform.machine()}, python {platform.python_version()}")
    def ot_rows():
        reg, rows = bench_ot(ot_n, torch_devices, args.reg)
        return [(f"label-aware Sinkhorn OT, {ot_n:,} x {ot_n:,}, 10 classes, reg={reg:.3g}", "value",
                 2.0 if ot_n >= 10_000 else None, rows)]

    stages = {
        "kmeans": lambda: [(f"spherical k-means, {n:,} x 384, k={args.k}", "mean cos",
                            10.0 if n >= 1_000_000 else None, bench_kmeans(n, args.k, faiss_devices))],
        "embed": lambda: [(f"MiniLM embedding, {n_texts:,} texts (CUDA: fp16, batch 512)", "mean norm", None,
                           bench_embed(n_texts, torch_devices))],
        "ot": ot_rows,
        "lm": lambda: [(f"LM proxy {label}, {lm_tokens:,} tokens (CUDA: bf16)", "bits/byte", None, rows)
                       for label, rows in bench_lm(lm_tokens, torch_devices).items()],
    }
    lines = ["| stage | CPU s | GPU s | GPU speed-up | target | CPU check | GPU check |",
             "|---|---|---|---|---|---|---|"]
    print("\n".join(lines), flush=True)
    for stage in args.stages:  # each row printed when measured: a run cut short keeps what finished
        for label, check, target_s, rows in stages[stage]():
            lines.append(_row(label, check, target_s, rows))
            print(lines[-1], flush=True)
    table = "\n".join(lines)
    if args.record is not None:
        command = "python benchmarks/gpu.py " + " ".join(sys.argv[1:] if argv is None else argv)
        with open(args.record, "a", encoding="utf-8") as fh:
            fh.write(f"\n## {date.today().isoformat()}: {gpu or 'no CUDA device'}\n\n`{command.strip()}`\n\n{table}\n")
        print(f"appended to {args.record}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
