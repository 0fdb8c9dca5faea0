import numpy as np
import pandas as pd
import pytest

from datamix.data import Source
from datamix.proxy.runs import MixtureRunner, ProxyTrainer, RunsTable, ratio_columns
from datamix.proxy.trainers import LMTrainer


def make_sources(rng, n=60, d=4, labels=(0, 1, 2)):
    out = []
    for i, name in enumerate(["a", "b"]):
        y = rng.choice(labels, n)
        X = rng.normal(size=(n, d)) + np.eye(d)[y % d] * (3 - 2 * i)
        out.append(Source.from_arrays(name, X, labels=y))
    return out


@pytest.fixture
def setup(rng):
    sources = make_sources(rng)
    yt = rng.integers(0, 3, 40)
    target = (rng.normal(size=(40, 4)) + np.eye(4)[yt] * 3, yt)
    return sources, target


def test_trainer_signature_and_validation():
    assert ProxyTrainer(model="logistic", C=0.5).signature == "logistic(C=0.5,max_iter=1000)"
    assert ProxyTrainer().signature != ProxyTrainer(epochs=5).signature
    assert ProxyTrainer(device="cuda").signature == ProxyTrainer().signature  # device is not an outcome
    with pytest.raises(ValueError, match="model"):
        ProxyTrainer(model="svm")
    with pytest.raises(ValueError, match="epochs"):
        ProxyTrainer(epochs=0)
    with pytest.raises(ValueError, match="unknown trainer option"):
        ProxyTrainer.from_dict({"modle": "linear"})


def test_table_round_trip_and_replace(tmp_path):
    table = RunsTable(tmp_path / "runs.csv")
    assert table.read().empty
    rows = [{"run_id": "r1", "data_key": "k", "trainer": "t", "size": 10, "seed": 0, "p_a": 0.25, "p_b": 0.75,
             "metric": 0.5, "metric_name": "accuracy", "loss": 1.0, "n_train": 10, "wall_s": 0.1, "created": "x"},
            {"run_id": "r2", "data_key": "k", "trainer": "t", "size": 20, "seed": 1, "p_a": 1.0, "p_b": 0.0,
             "metric": 0.7, "metric_name": "accuracy", "loss": 0.8, "n_train": 20, "wall_s": 0.2, "created": "x"}]
    table.append(rows)
    df = table.read()
    assert list(df["run_id"]) == ["r1", "r2"]
    np.testing.assert_allclose(df["p_a"], [0.25, 1.0])
    table.append([{**rows[0], "metric": 0.55}])  # same run_id: replaced, not duplicated
    df = table.read()
    assert len(df) == 2 and df.set_index("run_id").loc["r1", "metric"] == 0.55
    assert [p.name for p in tmp_path.iterdir()] == ["runs.csv"]  # no temporary file left behind
    (tmp_path / "bad.csv").write_text("x,y\n1,2\n")
    with pytest.raises(ValueError, match="lacks column"):
        RunsTable(tmp_path / "bad.csv").read()


def test_measurements_are_reused(setup, tmp_path, monkeypatch):
    sources, target = setup
    runner = MixtureRunner(sources, target, trainer=ProxyTrainer(model="logistic"), table=tmp_path / "runs.csv")
    mixtures = [[1.0, 0.0], [0.5, 0.5]]
    first = runner.measure_many(mixtures, [30, 50], seeds=[0, 1])
    assert len(first) == 8 and not first["reused"].any()
    assert set(ratio_columns(["a", "b"])) <= set(first.columns)
    assert first["metric"].between(0, 1).all() and (first["wall_s"] > 0).all()

    def refuse(*args, **kwargs):
        raise AssertionError("a stored run was trained again")

    monkeypatch.setattr(ProxyTrainer, "train", refuse)
    again = MixtureRunner(sources, target, trainer=ProxyTrainer(model="logistic"), table=tmp_path / "runs.csv")
    second = again.measure_many(mixtures, [30, 50], seeds=[0, 1])
    assert second["reused"].all()
    pd.testing.assert_series_equal(first["metric"], second["metric"])
    with pytest.raises(AssertionError, match="trained again"):  # another trainer: not reused
        MixtureRunner(sources, target, trainer=ProxyTrainer(model="logistic", C=0.1),
                      table=tmp_path / "runs.csv").measure(mixtures[0], 30)


def test_deterministic_and_torch_trainer(setup):
    sources, target = setup
    runner = MixtureRunner(sources, target, trainer=ProxyTrainer(model="linear", epochs=5))
    r1, r2 = runner.measure([0.3, 0.7], 40, seed=3), runner.measure([0.3, 0.7], 40, seed=3)
    assert r1.run_id == r2.run_id and r1.metric == r2.metric and r1.loss == r2.loss
    assert runner.run_id([0.3, 0.7], 40, 3) != runner.run_id([0.3, 0.7], 40, 4)


def test_a_row_of_seeds_per_mixture(setup):
    sources, target = setup
    runner = MixtureRunner(sources, target, trainer=ProxyTrainer(model="logistic"))
    mixtures = [[1.0, 0.0], [0.5, 0.5], [0.2, 0.8]]
    df = runner.measure_many(mixtures, [20, 40], seeds=[[3], [4], [5]])
    assert df["seed"].tolist() == [3, 3, 4, 4, 5, 5] and df["size"].tolist() == [20, 40] * 3
    for (_, row), p in zip(df.iterrows(), np.repeat(mixtures, 2, axis=0)):
        assert row["metric"] == runner.measure(p, row["size"], seed=row["seed"]).metric
    shared = runner.measure_many(mixtures, [20], seeds=[7, 8])  # one sequence: every mixture at every seed
    assert shared["seed"].tolist() == [7, 8] * 3
    with pytest.raises(ValueError, match="a row per mixture"):
        runner.measure_many(mixtures, [20], seeds=[[1], [2]])
    with pytest.raises(ValueError, match="integers"):
        runner.measure_many(mixtures, [20], seeds=[0.5])


def test_bad_input(setup, rng):
    sources, target = setup
    runner = MixtureRunner(sources, target)
    with pytest.raises(ValueError, match="sum to 1"):
        runner.measure([0.5, 0.6], 10)
    with pytest.raises(ValueError, match="one per source"):
        runner.measure([1.0], 10)
    with pytest.raises(ValueError, match="positive"):
        runner.measure_many([[1.0, 0.0]], [0])
    with pytest.raises(ValueError, match="feature dimension"):
        MixtureRunner(sources, (rng.normal(size=(5, 3)), np.zeros(5)))
    unlabeled = Source.from_arrays("u", rng.normal(size=(5, 4)))
    with pytest.raises(ValueError, match="no labels"):
        MixtureRunner([unlabeled], target)
    # a revealed sample larger than its offer is refused when the source is built
    with pytest.raises(ValueError, match="more than the offer_size"):
        Source.from_arrays("big", rng.normal(size=(5, 4)), labels=np.zeros(5), offer_size=3)
    with pytest.raises(ValueError, match=r"engine='spark'; choose one of \('local', 'ray'\)"):
        MixtureRunner(sources, target, engine="spark")
    with pytest.raises(ValueError, match="flush_every=0"):
        MixtureRunner(sources, target, flush_every=0)


def test_one_sample_source_and_disjoint_labels(rng):
    # documented behaviour: a source with one sample is repeated; labels absent from training score 0
    one = Source.from_arrays("one", rng.normal(size=(1, 3)), labels=[0])
    other = Source.from_arrays("other", rng.normal(size=(20, 3)), labels=rng.integers(0, 2, 20))
    target = (rng.normal(size=(10, 3)), np.full(10, 5))  # label 5 is in no source
    run = MixtureRunner([one, other], target, trainer=ProxyTrainer(model="logistic")).measure([0.5, 0.5], 12)
    assert run.metric == 0.0 and np.isfinite(run.loss)
    solo = MixtureRunner([one], (rng.normal(size=(4, 3)), np.zeros(4)), trainer=ProxyTrainer(model="logistic"))
    assert solo.measure([1.0], 5).metric == 1.0  # one class in training: predicts it everywhere


def test_compute_bound_runs_record_seen_unique_epochs(setup, tmp_path):
    sources, target = setup  # two sources of 60 samples
    trainer = ProxyTrainer(model="mlp", compute_bound=True, batch_size=16)
    assert "compute_bound=True" in trainer.signature and "epochs" not in trainer.signature
    runner = MixtureRunner(sources, target, trainer=trainer, table=tmp_path / "runs.csv")
    df = runner.measure_many([[1.0, 0.0], [0.5, 0.5]], [30, 240], seeds=[0])
    by = {(r.p_a, r.size): r for r in df.itertuples()}
    assert (by[1.0, 30].seen, by[1.0, 30].unique, by[1.0, 30].epochs) == (30, 30, 1.0)
    assert (by[1.0, 240].seen, by[1.0, 240].unique, by[1.0, 240].epochs) == (240, 60, 4.0)
    assert (by[0.5, 240].seen, by[0.5, 240].unique) == (240, 120)
    stored = runner.table.read().set_index("run_id")
    assert stored.loc[by[1.0, 240].run_id, "epochs"] == 4.0 and stored["metric_name"].eq("accuracy").all()
    with pytest.raises(ValueError, match="logistic"):
        ProxyTrainer(model="logistic", compute_bound=True)


MIXTURES, SIZES, SEEDS = [[1.0, 0.0], [0.5, 0.5]], [30, 50], [0, 1]  # 8 runs
VOLATILE = ["wall_s", "created"]  # all that may differ between two trainings of a run


def same_runs(got, expected):
    """The same runs, values bitwise equal (rows reused from the table hold seen/unique as floats)."""
    pd.testing.assert_frame_equal(got.drop(columns=VOLATILE + ["reused"]), expected.drop(columns=VOLATILE + ["reused"]),
                                  check_exact=True, check_dtype=False)


def test_runs_are_recorded_as_they_finish_and_an_interrupted_call_resumes(setup, tmp_path, monkeypatch):
    sources, target = setup
    trainer, table = ProxyTrainer(model="logistic"), tmp_path / "runs.csv"
    train, stored = ProxyTrainer.train_mixture, []

    def killed_at_the_fourth(self, *args, **kwargs):
        stored.append(len(RunsTable(table).read()))  # runs in the table when this training starts
        if len(stored) == 4:
            raise KeyboardInterrupt
        return train(self, *args, **kwargs)

    monkeypatch.setattr(ProxyTrainer, "train_mixture", killed_at_the_fourth)
    with pytest.raises(KeyboardInterrupt):
        MixtureRunner(sources, target, trainer=trainer, table=table).measure_many(MIXTURES, SIZES, seeds=SEEDS)
    assert stored == [0, 1, 2, 3]  # each run was in the table before the next one started
    monkeypatch.undo()
    resumed = MixtureRunner(sources, target, trainer=trainer, table=table).measure_many(MIXTURES, SIZES, seeds=SEEDS)
    assert resumed["reused"].tolist() == [True] * 3 + [False] * 5  # only the missing runs were trained
    fresh = MixtureRunner(sources, target, trainer=trainer).measure_many(MIXTURES, SIZES, seeds=SEEDS)
    same_runs(resumed, fresh)
    assert RunsTable(table).read()["run_id"].tolist() == fresh["run_id"].tolist()


@pytest.mark.ray
def test_ray_engine_writes_the_local_table_and_resumes(ray_cluster, setup, tmp_path):
    """A compute-bound MLP: the runs of a first mixture are in the table already (an interrupted
    call); Ray trains the others, one task each, and the table is the one the local engine writes."""
    sources, target = setup
    trainer = ProxyTrainer(model="mlp", compute_bound=True, batch_size=16)
    mixtures = MIXTURES + [[0.2, 0.8]]
    local = MixtureRunner(sources, target, trainer=trainer, table=tmp_path / "local.csv")
    expected = local.measure_many(mixtures, SIZES, seeds=SEEDS)
    MixtureRunner(sources, target, trainer=trainer, table=tmp_path / "ray.csv").measure_many(
        mixtures[:1], SIZES, seeds=SEEDS)
    on_ray = MixtureRunner(sources, target, trainer=trainer, table=tmp_path / "ray.csv", engine="ray")
    assert on_ray.engine.name == "ray"
    got = on_ray.measure_many(mixtures, SIZES, seeds=SEEDS)
    assert got["reused"].tolist() == [True] * 4 + [False] * 8  # only the missing runs were trained
    same_runs(got, expected)
    pd.testing.assert_frame_equal(on_ray.table.read().drop(columns=VOLATILE),
                                  local.table.read().drop(columns=VOLATILE), check_exact=True)
    assert on_ray.measure_many(mixtures, SIZES, seeds=SEEDS)["reused"].all()


@pytest.mark.ray
def test_ray_engine_trains_the_language_model_as_locally(ray_cluster, tmp_path):
    words = ["alpha", "beta", "gamma", "delta", "omega", "sigma"]
    rng = np.random.default_rng(0)
    texts = [[" ".join(rng.choice(words[k:k + 4], 12)) for _ in range(20)] for k in (0, 2)]
    sources = [Source.from_arrays(name, t) for name, t in zip("ab", texts)]
    target = [" ".join(rng.choice(words, 12)) for _ in range(10)]
    trainer = LMTrainer(width=32, depth=1, heads=4, context=32)
    runs = {engine: MixtureRunner(sources, target, trainer=trainer, table=tmp_path / f"{engine}.csv", engine=engine)
            .measure_many([[0.5, 0.5], [0.8, 0.2]], [600, 1500]) for engine in ("local", "ray")}
    pd.testing.assert_frame_equal(runs["ray"].drop(columns=VOLATILE), runs["local"].drop(columns=VOLATILE),
                                  check_exact=True)
