"""The ``datamix`` command: a thin layer that parses arguments, loads the config and calls the library."""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
import traceback
from pathlib import Path

from datamix import __version__
from datamix.config import PIPELINES, load_config
from datamix.data.store import MANIFEST, EmbeddingStore
from datamix.optimize import Plan
from datamix.run import RunDir, check_config, embed_stage, load_sources, score_stage

logger = logging.getLogger("datamix")

#: pipeline stage commands: ``datamix NAME CONFIG`` runs the pipeline up to and including NAME
STAGE_COMMANDS = {"fit": "fitting its predictor", "predict": "its predictions", "optimize": "its plan",
                  "apply": "writing the curated data", "report": "its report"}


def _run_dir(cfg, out: str | None) -> RunDir:
    return RunDir(out if out is not None else Path("runs") / cfg.name)


def cmd_run(args) -> int:
    """Run the config's pipeline: all of it (``run``), or up to and including the stage the command names."""
    cfg = load_config(args.config)
    pipeline = importlib.import_module(f"pipelines.{cfg.pipeline}")
    options = {}
    if args.command != "run":
        stages = getattr(pipeline, "STAGES", ())
        if args.command not in stages:
            raise ValueError(f"the {cfg.pipeline} pipeline (config {args.config}) has no stage {args.command!r}; "
                             f"its stages: {', '.join(stages) or 'none (use datamix run)'}")
        options["until"] = args.command
    run_dir = _run_dir(cfg, args.out)
    metrics = pipeline.run(cfg, run_dir, progress=not args.quiet, restart=args.restart, **options)
    if options:
        print(f"stages done: {', '.join(metrics['stages_done'])}")
    _summarize(run_dir, metrics)
    return 0


def _summarize(run_dir: RunDir, metrics: dict) -> None:
    print(f"run directory: {run_dir.root}")
    for name, s in metrics.get("embed", {}).items():
        print(f"  embedded {name}: {s['n']} x {s['dim']} ({s['model']}, {s['samples_per_s']:.0f} samples/s)")
    if "law" in metrics:
        law = metrics["law"]
        print(f"  law: mean abs. relative error {law['mean_abs_rel_error']:.4g} on its runs"
              + ("" if law.get("converged", True) else "; WARNING: its fit did not converge (no L-BFGS-B start "
                 "met its tolerance): treat the predictions with care"))
    if "selection" in metrics and "ranker" not in metrics["selection"]:  # runs of pools or (N, D, U): laws
        errors = ", ".join(f"{c} {s['rel_error']:.3g}" for c, s in metrics["candidates"].items())
        sel = metrics["selection"]
        print(f"  law ({sel['method']}): {sel['law']}; k-fold relative errors: {errors}")
        for c, s in (metrics.get("candidates_at_scale") or {}).items():
            print(f"  transfer to the larger runs: {c} relative error {s['rel_error']:.3g} over {s['runs']} runs")
    elif "selection" in metrics:  # runs: the chosen predictors and how their ranking transfers
        sel = metrics["selection"]
        print(f"  predictors ({sel['method']}): ranker {sel['ranker']}, picker {sel['picker']}")
        for size, per in (metrics.get("transfer") or {}).items():
            print(f"  transfer to N={size}: Spearman {per['chosen']['spearman']:.4g}, top-pick regret "
                  f"{per['chosen']['regret']:.4g} over {per['chosen']['runs']} runs")
    solver = ((metrics.get("plan") or {}).get("provenance") or {}).get("solver") or {}
    if solver.get("converged") is False:
        print("  optimizer: WARNING: did not converge; the plan is the best point it reached")
    for name, v in (metrics.get("predictions") or {}).items():
        print(f"  predicted {name}: {v['predicted']:.4g} (interval {v['lo']:.4g} .. {v['hi']:.4g})")
    planned = "optimize" in metrics.get("stages_done", ["optimize"])  # a stale plan.yaml is not shown
    if planned and (run_dir.root / "plan.yaml").exists():
        plan = Plan.from_yaml(run_dir.root / "plan.yaml")
        shown = {k: round(v, 3) for k, v in plan.ratios.items() if v > 0}
        keep = {k: v for k, v in plan.keep_fractions.items() if k in shown}  # an unused source keeps nothing
        print(f"  plan: ratios {shown}, keep {keep or '-'}, buy {plan.buy or '-'}")
        print(f"  predicted {plan.predicted:.4g} (interval {plan.interval[0]:.4g} .. {plan.interval[1]:.4g})")
    for name, v in (metrics.get("dedup") or {}).items():
        print(f"  dedup {name}: kept {v['kept']} of {v['rows']} ({v['exact_removed']} exact, {v['near_removed']} near "
              "duplicates removed)")
    if "edited_plan" in metrics:
        v = metrics["edited_plan"]
        print(f"  plan.yaml was edited by hand: used as it is (predicted {v['predicted']:.4g}, interval "
              f"{v['interval'][0]:.4g} .. {v['interval'][1]:.4g}); delete it to have datamix plan again")
    for line in (metrics.get("data_sufficiency") or {}).get("warnings", []):
        print(f"  data sufficiency: {line}")
    for name, (lo, hi) in (metrics.get("at_edge") or {}).items():
        print(f"  plan at the edge of the runs for {name} (measured ratios {lo:.3g} .. {hi:.3g}): the predictors "
              "would go further, unchecked; measure mixtures past it or set runs.extrapolate: true")
    for name, v in (metrics.get("check") or {}).items():
        print(f"  plan vs {name}{' (' + v['source'] + ')' if 'source' in v else ''}: {v['outcome']} "
              f"({v['difference']:+.4g} +- {v['se']:.2g})")
    for which, v in (metrics.get("frontier_check") or {}).items():
        print(f"  frontier at {v['multiple']:.3g}x ({which}): plan {v['plan']['measured']:.4g} vs {v['against']} "
              f"{v[v['against']]['measured']:.4g}: {v['outcome']} ({v['difference']:+.4g}, seed sd {v['sd']:.2g})")
    for name, v in (metrics.get("compared") or {}).items():  # purchase: the plan and its alternatives
        measured = f", measured {v['measured']:.4g}" if v.get("measured") is not None else ""
        print(f"  {name}: buy {v['buy']} for {v['cost']:g}, predicted {v['predicted']:.4g}{measured}")
    if "decision" in metrics:
        print(f"  decision: {metrics['decision']}")
    for name, v in (metrics.get("verified") or {}).items():
        if isinstance(v, dict) and "measured" in v and "compared" not in metrics:
            print(f"  measured {name}: {v['measured']:.4g} (predicted {v.get('predicted', float('nan')):.4g})")
    for name in ("report.html", "prune_eval/metrics.png"):
        if (run_dir.root / name).exists():
            print(f"  see {run_dir.root / name}")


def cmd_embed(args) -> int:
    cfg = load_config(args.config)
    run_dir = _run_dir(cfg, args.out)
    with run_dir.lock():
        run_dir.claim(cfg, restart=args.restart)
        sources, target = load_sources(cfg, run_dir)
        run_dir.save_config(cfg)
        everything = sources + ([target] if target is not None else [])
        for name, s in embed_stage(cfg, run_dir, everything, progress=not args.quiet).items():
            print(f"{name}: {s['n']} x {s['dim']} -> {run_dir.embeddings(name)}")
    return 0


def cmd_score(args) -> int:
    cfg = load_config(args.config)
    run_dir = _run_dir(cfg, args.out)
    with run_dir.lock():
        run_dir.claim(cfg, restart=args.restart)
        sources, _ = load_sources(cfg, run_dir)
        run_dir.save_config(cfg)
        embed_stage(cfg, run_dir, sources, progress=not args.quiet)
        for name, means in score_stage(cfg, run_dir, sources).items():
            shown = ", ".join(f"{m} {v:.3g}" for m, v in means.items())
            print(f"{name}: {run_dir.path('scores', name + '.parquet')} (means: {shown})")
    return 0


def _describe_store(path: Path) -> None:
    store = EmbeddingStore(path, allow_partial=True)
    store.verify()
    state = "complete" if store.complete else f"incomplete ({len(store)} of {store.n_total})"
    print(f"store {path}: {len(store)} x {store.dim} float32, model {store.model}, "
          f"{len(store.shards)} shards, {state}, checksums ok")


def cmd_info(args) -> int:
    if args.path is None:
        import faiss
        import torch

        from datamix.data.bundled import SCENARIOS

        gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
        print(f"datamix {__version__} (python {sys.version.split()[0]})")
        print(f"torch {torch.__version__}, CUDA device: {gpu}")
        print(f"faiss {faiss.__version__}, GPUs visible to faiss: {faiss.get_num_gpus()}")
        print(f"pipelines: {', '.join(PIPELINES)}")
        for name, fn in SCENARIOS.items():
            print(f"bundled scenario {name!r}: {fn.__doc__.splitlines()[0]}")
        return 0
    path = Path(args.path)
    if path.is_file():
        cfg = load_config(path)
        check_config(cfg)
        print(f"{path}: valid {cfg.pipeline} config {cfg.name!r} (its files, sources, model and settings checked)")
        print(cfg.to_yaml(), end="")
    elif (path / MANIFEST).exists():
        _describe_store(path)
    elif (path / "config.yaml").exists():
        print(f"run directory {path}")
        for store in sorted((path / "embeddings").glob(f"*/{MANIFEST}")):
            _describe_store(store.parent)
        if (path / "metrics.json").exists():
            print(json.dumps(json.loads((path / "metrics.json").read_text()), indent=2))
    else:
        print(f"datamix: error: {path} is not a config file, an embedding store or a run directory",
              file=sys.stderr)
        return 2
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="datamix", description="Curate training data with data scaling laws.")
    parser.add_argument("--version", action="version", version=f"datamix {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="log debug messages, and print the traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True)

    stage = argparse.ArgumentParser(add_help=False)
    stage.add_argument("config", help="YAML run config")
    stage.add_argument("--out", help="run directory (default: runs/<name>)")
    stage.add_argument("-q", "--quiet", action="store_true", help="no progress bars or progress messages")
    stage.add_argument("--restart", action="store_true", help="start over in a run directory that holds a run of "
                       "another config (its results are removed; embeddings, scores and proxy runs are kept and reused "
                       "only where their inputs are unchanged)")
    sub.add_parser("run", parents=[stage], help="run the pipeline a config names").set_defaults(func=cmd_run)
    sub.add_parser("embed", parents=[stage], help="embed the config's sources into the run directory (resumes)"
                   ).set_defaults(func=cmd_embed)
    sub.add_parser("score", parents=[stage], help="score every sample with the config's pruning metrics "
                   "(embeds first if needed)").set_defaults(func=cmd_score)
    for name, what in STAGE_COMMANDS.items():
        sub.add_parser(name, parents=[stage], help=f"run the config's pipeline up to {what} (reusing earlier "
                       "stages' outputs in the run directory)").set_defaults(func=cmd_run)

    p = sub.add_parser("info", help="describe this install, a config, a store or a run directory")
    p.add_argument("path", nargs="?", help="config file, store folder or run directory")
    p.set_defaults(func=cmd_info)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    quiet = getattr(args, "quiet", False)
    logger.setLevel(logging.DEBUG if args.verbose else logging.WARNING if quiet else logging.INFO)
    if quiet:  # HF datasets draws its own progress bars (reading files, map, filter)
        import datasets

        datasets.disable_progress_bars()
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("datamix: interrupted; rerun the same command to resume (finished work is kept)", file=sys.stderr)
        return 130
    except (ValueError, OSError, MemoryError, ImportError) as exc:
        if args.verbose:  # the whole story for a bug report; the one-line message otherwise
            traceback.print_exc(file=sys.stderr)
        print(f"datamix: error: {_message(exc)}", file=sys.stderr)
        return 2


def _message(exc: BaseException) -> str:
    """One line (or a few, for a config's list of errors) saying what went wrong and where."""
    if isinstance(exc, MemoryError):
        return (f"out of memory ({exc or 'allocation failed'}); lower the sizes in the config (tokens, passes, "
                "batch sizes) or run on a machine with more memory")
    if isinstance(exc, OSError) and not isinstance(exc, FileNotFoundError) and exc.filename is not None:
        return f"{exc.filename}: {exc.strerror or exc}"
    return str(exc) or type(exc).__name__


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
