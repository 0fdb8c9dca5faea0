"""Read your own files as sources, embed them (resumably), and draw a deterministic mixture.

    python examples/sources_and_embeddings/run.py [--out runs/example]

Writes two small jsonl sources into the output folder (stand-ins for your data), embeds them with
the bundled MiniLM model, and prints what a 70/30 mixture of 1,000 samples draws from each.
"""

import argparse
import json
from pathlib import Path

import numpy as np

from datamix.data import Source, sample_mixture
from datamix.data.bundled import stdlib_docstrings
from datamix.embed import TextEncoder, embed


def write_jsonl(path: Path, texts, labels) -> None:
    path.write_text("".join(json.dumps({"text": t, "label": y}) + "\n" for t, y in zip(texts, labels)))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="runs/example")
    out = Path(ap.parse_args().out)
    out.mkdir(parents=True, exist_ok=True)

    texts, labels = stdlib_docstrings()
    write_jsonl(out / "docs.jsonl", texts[::2], labels[::2])
    write_jsonl(out / "offer.jsonl", texts[1::2][:200], labels[1::2][:200])
    docs = Source.from_files("docs", out / "docs.jsonl", field="text", label_field="label", price=1.0)
    # a seller showed 200 rows of an offer of 50,000
    offer = Source.from_files("offer", out / "offer.jsonl", field="text", label_field="label",
                              price=0.2, offer_size=50_000)

    encoder = TextEncoder("minilm")  # loaded once, used for both sources
    for src in (docs, offer):
        store = embed(src, encoder, store=out / "embeddings" / src.name, shard_size=256)
        X = store.load()
        print(f"{src.name}: {len(store)} x {store.dim} embeddings, mean norm {np.linalg.norm(X, axis=1).mean():.3f}"
              f"{f', revealed {len(src)} of {src.total_size}' if src.revealed else ''}")

    mix = sample_mixture([docs, offer], [0.7, 0.3], 1000, seed=0)
    print(f"mixture of 1,000 at 70/30: {mix.counts} "
          f"(offer rows repeated up to {np.bincount(mix.index[mix.source == 1]).max()} times)")


if __name__ == "__main__":
    main()
