"""Proxies that train like pretraining: what repetition costs the LM proxy, and the compute-aware plan.

A. Repetition (issue 6a). The byte-level LM proxy (defaults of ``LMTrainer``) trains on the
   bundled ``pretrain_text`` docstrings: unique-data runs (U = D, D = U0 x 1, 2, 4, 8, 16) and
   repeated runs of one fixed pool of U0 tokens (D = U0 x 1 ... 16 epochs), every run at ``--seeds``
   seeds. A power law L = c + a D^-b fitted to the unique runs is the Chinchilla base at this fixed
   model size (A = 0); ``DataConstrained(base=...)`` then fits R_D* on the repeated runs of <= 4
   epochs and predicts 8 and 16 epochs: the table prints measured and predicted bits per byte and
   the extrapolation error.
B. The compute-aware decision (6b, 6c), read from a finished curate run directory (default
   ``runs/pretrain_text``, made by ``datamix run configs/pretrain_text.yaml``): the frontier's
   keep-fraction and ratio per source over 1/8x..8x the budget, and the plan against uniform,
   natural, unfiltered and the best single source as measured by the verify stage (ties within two
   standard errors are ties).

    python benchmarks/pretrain_proxies.py [--pool 37500] [--seeds 0 1] [--run runs/pretrain_text]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from datamix.data.bundled import load_scenario
from datamix.laws import DataConstrained, PowerLaw
from datamix.proxy import LMTrainer, TokenDocs, train_lm


def repetition(pool_tokens: int, seeds: list[int]) -> None:
    trainer = LMTrainer()
    tok = trainer.tokenizer_
    sc = load_scenario("pretrain_text", seed=0)
    docs = TokenDocs.from_texts(sc.source("docs").samples(), tok).docs()
    target = TokenDocs.from_texts(sc.target.samples(), tok)
    order = np.random.default_rng(0).permutation(len(docs))
    cum = np.cumsum([len(docs[i]) + 1 for i in order])

    def pool(tokens):
        return [docs[i] for i in order[:int(np.searchsorted(cum, tokens)) + 1]]

    options = {k: getattr(trainer, k) for k in ("width", "depth", "heads", "context", "batch_size", "lr",
                                                 "weight_decay", "warmup")}
    multiples = [1, 2, 4, 8, 16]
    rows = []
    t0 = time.perf_counter()
    for kind in ("unique", "repeated"):
        for m in multiples:
            if kind == "unique" and pool_tokens * m > cum[-1]:
                continue
            for seed in seeds:
                D = pool_tokens * m
                data = pool(D if kind == "unique" else pool_tokens)
                res = train_lm([data], [D], target.docs(), vocab_size=tok.vocab_size,
                               target_bytes=int(target.n_bytes.sum()), seed=seed, **options)
                rows.append({"kind": kind, "multiple": m, "D": res.seen, "U": res.unique, "epochs": res.epochs, "seed": seed,
                             "bpb": res.bits_per_byte})
    df = pd.DataFrame(rows)
    print(f"A. repetition: LM proxy {trainer.signature}, {len(df)} runs in {time.perf_counter() - t0:.0f} s; "
          f"pool U0 = {pool_tokens:,} tokens (bytes) of docstrings, target {int(target.n_bytes.sum()):,} bytes\n")
    uniq = df[df.kind == "unique"]
    base = PowerLaw().fit(uniq[["D"]].rename(columns={"D": "n"}), uniq["bpb"])
    p = base.params_
    chin = {"E": p["c"], "A": 1e-12, "alpha": 1.0, "B": p["a"], "beta": p["b"]}
    rep = df[df.kind == "repeated"]
    train = rep[rep.epochs <= 4.5]
    law = DataConstrained(base=chin).fit(train.assign(N=1e6)[["N", "D", "U"]], train["bpb"])
    summary = df.groupby(["kind", "multiple"]).agg(D=("D", "first"), U=("U", "first"), epochs=("epochs", "first"),
                                                   bpb=("bpb", "mean"), sd=("bpb", "std")).reset_index()
    pred = law.predict(summary.assign(N=1e6)[["N", "D", "U"]])
    summary["predicted"] = pred
    summary["error %"] = 100 * (summary["predicted"] - summary["bpb"]) / summary["bpb"]
    print(summary.round(4).to_string(index=False))
    held = summary[(summary.kind == "repeated") & (summary.epochs > 4.5)]
    print(f"\nunique-data power law: bpb = {p['c']:.3f} + {p['a']:.3g} D^-{p['b']:.3f}")
    print(f"R_D* = {law.params_['R_D_star']:.3f} (fitted on repeated runs of <= 4 epochs); extrapolation to "
          f"{', '.join(f'{e:.0f}' for e in held.epochs)} epochs: mean abs. error "
          f"{np.mean(np.abs(held['error %'])):.2f}% of the measured bits per byte")
    fresh = summary[(summary.kind == "unique")].set_index("multiple")["bpb"]
    rep_s = summary[(summary.kind == "repeated")].set_index("multiple")["bpb"]
    both = fresh.index.intersection(rep_s.index)
    print("cost of repetition at equal tokens seen (repeated - unique, bits per byte): "
          + ", ".join(f"{rep_s[m] - fresh[m]:+.3f} at {m} epochs" for m in both))


def decision(run: Path) -> None:
    metrics = json.loads((run / "metrics.json").read_text())
    print(f"\nB. the compute-aware decision, from {run}/metrics.json "
          f"(trainer {metrics.get('trainer')}, budget {metrics['tokens']:,} {metrics.get('unit', 'samples')})\n")
    front = pd.DataFrame(metrics["frontier"])
    front["multiple"] = front["budget"] / metrics["tokens"]
    cols = ["multiple", "predicted"] + [c for c in front if c.startswith(("ratio_", "keep_"))]
    print(front[cols].round(3).to_string(index=False))
    for name in [c.removeprefix("keep_") for c in front if c.startswith("keep_")]:
        used = front[front[f"ratio_{name}"] > 1e-3]
        keep = used[f"keep_{name}"].to_numpy()
        if len(keep) > 1 and keep[-1] > keep[0] + 1e-3:
            print(f"keep-fraction of {name} rises with the budget: {keep[0]:.3f} -> {keep[-1]:.3f}")
    for which, v in (metrics.get("frontier_check") or {}).items():
        other = v[v["against"]]
        print(f"at {v['multiple']:.3g}x ({which} budget, {v['budget']:,.0f}): plan {v['plan']['measured']:.4f} "
              f"+- {v['plan']['measured_std']:.4f} vs {v['against']} {other['measured']:.4f} +- "
              f"{other['measured_std']:.4f}: {v['outcome']} (difference {v['difference']:+.4f}, 2 sd = {2 * v['sd']:.4f})")
    for label, c in (metrics.get("check") or {}).items():
        v = metrics["verified"].get(label, metrics["verified"].get(f"only {c.get('source', '')}", {}))
        print(f"plan vs {label:<22} {c['outcome']:<6} plan {metrics['verified']['plan']['measured']:.4f} "
              f"this {v.get('measured', float('nan')):.4f} (difference {c['difference']:+.4f} +- {c['se']:.4f})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pool", type=int, default=37_500, help="tokens of the fixed pool of part A")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--run", type=Path, default=Path("runs/pretrain_text"), help="a finished curate run directory")
    args = ap.parse_args()
    print(f"command: python benchmarks/pretrain_proxies.py --pool {args.pool} --seeds "
          f"{' '.join(map(str, args.seeds))} --run {args.run}\n")
    repetition(args.pool, args.seeds)
    if (args.run / "metrics.json").exists():
        decision(args.run)
    else:
        print(f"\nB. skipped: {args.run}/metrics.json not found (run datamix run configs/pretrain_text.yaml first)")


if __name__ == "__main__":
    main()
