"""Framework integrations with real libraries on CPU: PyTorch's watch."""

import importlib.util

import pytest
from conftest import read_run

import nbtrack

torch = pytest.importorskip("torch")


def small_model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))


def train(model, run, steps):
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(32, 4), torch.randn(32, 1)
    for _ in range(steps):
        loss = torch.nn.functional.mse_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        run.log({"loss": loss.item()})


def hooks(model):
    forward = sum(len(m._forward_pre_hooks) for m in model.modules())
    backward = sum(len(p._backward_hooks or {}) for p in model.parameters())
    return forward, backward


def test_watch_logs_gradient_and_parameter_histograms_every_log_freq_batches(store_dir):
    model = small_model()
    run = nbtrack.init(project="watch", dir=store_dir)
    run.watch(model, log="all", log_freq=5)
    assert hooks(model) == (1, 0)  # between samples: only the counting hook
    train(model, run, 12)
    run.finish()
    assert hooks(model) == (0, 0)  # finish removed every hook
    rows = read_run(store_dir, "watch", run.id).rows()
    sampled = [r["_step"] for r in rows if "gradients/0.weight" in r]
    assert sampled == [4, 9]  # the 5th and 10th batches, with the rows they were logged with
    row = rows[4]
    names = {k for k in row if k.startswith(("gradients/", "parameters/"))}
    assert names == {
        f"{kind}/{layer}.{p}" for kind in ("gradients", "parameters") for layer in (0, 2) for p in ("weight", "bias")
    }
    grad = row["gradients/0.weight"]
    assert grad.kind == "histogram" and len(grad["values"]) == 64 and sum(grad["values"]) == 32  # 8 x 4 weights
    params = row["parameters/2.bias"]
    assert sum(params["values"]) == 1


def test_unwatch_removes_the_hooks_and_the_hooks_go_after_the_sampled_backward(store_dir):
    model, other = small_model(), small_model()
    run = nbtrack.init(project="watch", dir=store_dir)
    nbtrack.watch([model, other], log="gradients", log_freq=1)
    x = torch.randn(2, 4)
    model(x).sum().backward()
    assert hooks(model)[1] == 4  # the sampled batch: one-shot gradient hooks, fired
    model(x)  # the next forward drops the fired hooks before it samples again
    assert hooks(model) == (1, 4)
    run.unwatch(other)
    assert hooks(other) == (0, 0) and hooks(model)[0] == 1
    nbtrack.unwatch()
    assert hooks(model) == (0, 0)
    with pytest.raises(nbtrack.UsageError, match="log must be 'gradients', 'parameters', 'all' or None"):
        run.watch(model, log="weights")
    with pytest.raises(nbtrack.UsageError, match="models must be torch.nn.Module objects"):
        run.watch("not a model")
    run.finish()


def test_sklearn_plots_log_charts_computed_with_scikit_learn(store_dir):
    sklearn = pytest.importorskip("sklearn")
    import numpy as np
    from sklearn.cluster import KMeans
    from sklearn.datasets import make_blobs, make_classification, make_regression
    from sklearn.linear_model import LinearRegression, LogisticRegression
    from sklearn.model_selection import train_test_split

    import nbtrack as wandb

    X, y = make_classification(n_samples=120, n_features=5, random_state=0)
    X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
    clf = LogisticRegression().fit(X_train, y_train)
    run = wandb.init(project="sk", dir=store_dir)
    wandb.sklearn.plot_classifier(
        clf,
        X_train,
        X_test,
        y_train,
        y_test,
        clf.predict(X_test),
        clf.predict_proba(X_test),
        labels=["no", "yes"],
        feature_names=list("abcde"),
    )
    Xr, yr = make_regression(n_samples=60, n_features=3, noise=5, random_state=0)
    wandb.sklearn.plot_regressor(LinearRegression().fit(Xr[:40], yr[:40]), Xr[:40], Xr[40:], yr[:40], yr[40:])
    Xc, _ = make_blobs(n_samples=60, centers=3, random_state=0)
    km = KMeans(n_clusters=3, n_init=2, random_state=0).fit(Xc)
    wandb.sklearn.plot_clusterer(km, Xc, km.labels_)
    run.finish()
    rows = read_run(store_dir, "sk", run.id).rows()
    logged = {}  # the first of each key: plot_regressor logs its own summary_metrics later
    for r in rows:
        for k, v in r.items():
            if not k.startswith("_"):
                logged.setdefault(k, v)
    assert set(logged) >= {
        "summary_metrics",
        "class_proportions",
        "confusion_matrix",
        "roc",
        "pr",
        "feature_importances",
        "calibration_curve",
        "learning_curve",
        "residuals",
        "outlier_candidates",
        "elbow_curve",
        "silhouette_plot",
    }
    assert all(v.kind == "chart" for v in logged.values())
    cm = {(a, p): n for a, p, n in logged["confusion_matrix"].table()["data"]}
    predicted = clf.predict(X_test)
    assert cm["yes", "yes"] == int(((predicted == 1) & (y_test == 1)).sum())
    accuracy = dict(logged["summary_metrics"].table()["data"])["accuracy"]
    assert accuracy == pytest.approx(float((predicted == y_test).mean()), abs=1e-6)
    importances = [n for n, _v in logged["feature_importances"].table()["data"]]
    assert sorted(importances) == list("abcde")
    elbow = logged["elbow_curve"].table()["data"]
    assert [k for k, _e, _t in elbow] == [1, 3, 5, 7, 9] and elbow[0][1] > elbow[1][1]  # error falls with k
    assert logged["roc"]["spec"]["kind"] == "roc_curve"
    del sklearn, np


def test_keras_callbacks_with_the_torch_backend(store_dir, tmp_path):
    if importlib.util.find_spec("keras") is None:
        pytest.skip("keras is not installed (pip install 'nbtrack[keras]')")
    import numpy as np

    from nbtrack.integration.keras import (  # picks the torch backend before Keras loads
        WandbCallback,
        WandbEvalCallback,
        WandbMetricsLogger,
        WandbModelCheckpoint,
        keras,
    )

    assert keras.backend.backend() == "torch"
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(64, 4)).astype("float32"), rng.integers(0, 2, size=(64, 1)).astype("float32")
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1, activation="sigmoid")]
    )
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="binary_crossentropy", metrics=["accuracy"])

    class Eval(WandbEvalCallback):
        def add_ground_truth(self, logs=None):
            for i in range(3):
                self.data_table.add_data(i, float(y[i, 0]))

        def add_model_predictions(self, epoch, logs=None):
            predicted = self.model.predict(x[:3], verbose=0)
            for i in range(3):
                self.pred_table.add_data(epoch, i, float(predicted[i, 0]))

    run = nbtrack.init(project="keras", dir=store_dir, config={"lr": 0.01})
    model.fit(
        x,
        y,
        epochs=3,
        batch_size=16,
        validation_split=0.25,
        verbose=0,
        callbacks=[
            WandbMetricsLogger(log_freq=2),
            WandbModelCheckpoint(str(tmp_path / "ckpt.keras")),
            Eval(["idx", "label"], ["epoch", "idx", "pred"]),
            WandbCallback(monitor="val_loss", log_weights=True),
        ],
    )
    run.finish()
    record = read_run(store_dir, "keras", run.id)
    epochs = [r for r in record.rows() if "epoch/loss" in r]
    assert [r["epoch/epoch"] for r in epochs] == [0, 1, 2]
    assert all(0 <= r["epoch/accuracy"] <= 1 and r["epoch/learning_rate"] == pytest.approx(0.01) for r in epochs)
    batches = [r["batch/batch_step"] for r in record.rows() if "batch/batch_step" in r]
    assert batches == [2, 4, 6, 8]  # 3 batches an epoch (48 rows / 16) for 3 epochs, every 2nd
    weights = sorted({k for r in record.rows() for k in r if k.startswith("parameters/")})
    assert len(weights) == 4 and all(record.rows(keys=[k])[0][k].kind == "histogram" for k in weights)
    assert "best_val_loss" in record.summary and "best_epoch" in record.summary
    versions = nbtrack.Api(store_dir).artifacts("model", f"keras/run_{run.id}_model")
    assert [a.aliases for a in reversed(versions)] == [["epoch_0"], ["epoch_1"], ["epoch_2", "latest"]]
    assert nbtrack.Api(store_dir).artifact(f"keras/model-{run.id}:best").files()[0].path == "model-best.keras"
    preds = nbtrack.Api(store_dir).artifact(f"keras/run_{run.id}_pred:epoch_2").get("eval_data")
    assert preds.columns == ["epoch", "idx", "pred"] and [row[:2] for row in preds.data] == [[2, 0], [2, 1], [2, 2]]


def test_lightning_logger_hyperparameters_metrics_at_the_trainer_step_and_checkpoints(store_dir, tmp_path):
    pytest.importorskip("lightning")
    import lightning.pytorch as pl

    from nbtrack.integration.lightning import WandbLogger

    class Tiny(pl.LightningModule):
        def __init__(self, lr=0.05, hidden=8):
            super().__init__()
            self.save_hyperparameters()
            self.net = small_model()

        def training_step(self, batch, _i):
            x, y = batch
            loss = torch.nn.functional.mse_loss(self.net(x), y)
            self.log("train_loss", loss)
            return loss

        def validation_step(self, batch, _i):
            x, y = batch
            self.log("val_loss", torch.nn.functional.mse_loss(self.net(x), y))

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)

    data = torch.utils.data.TensorDataset(torch.randn(32, 4), torch.randn(32, 1))
    loader = torch.utils.data.DataLoader(data, batch_size=8)
    logger = WandbLogger(project="pl", save_dir=str(store_dir), log_model=True)
    trainer = pl.Trainer(
        max_epochs=2,
        logger=logger,
        log_every_n_steps=1,
        default_root_dir=str(tmp_path),
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        callbacks=[pl.callbacks.ModelCheckpoint(monitor="val_loss", save_last=True)],
    )
    trainer.fit(Tiny(), loader, loader)
    run = logger.experiment
    logger.log_image("samples", [torch.rand(3, 4, 4).numpy().transpose(1, 2, 0)], step=8, caption=["noise"])
    run.finish()
    record = read_run(store_dir, "pl", run.id)
    assert record.config["lr"] == 0.05 and record.config["hidden"] == 8
    steps = [r["trainer/global_step"] for r in record.rows() if "train_loss" in r]
    assert steps == list(range(8))  # 4 batches x 2 epochs, at the trainer's step
    assert [r["trainer/global_step"] for r in record.rows() if "val_loss" in r] == [3, 7]
    assert [r["samples"][0]["caption"] for r in record.rows() if "samples" in r] == ["noise"]
    versions = nbtrack.Api(store_dir).artifacts("model", f"pl/model-{run.id}")
    assert versions and "best" in {alias for a in versions for alias in a.aliases}
    assert versions[0].files()[0].path == "model.ckpt"


def test_transformers_callback_logs_like_wandb_and_the_final_model(store_dir, tmp_path, monkeypatch):
    transformers = pytest.importorskip("transformers")
    from nbtrack.integration.transformers import WandbCallback

    monkeypatch.setenv("NBTRACK_DIR", str(store_dir))
    config = transformers.BertConfig(
        vocab_size=40,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=16,
        num_labels=2,
    )
    torch.manual_seed(0)
    model = transformers.BertForSequenceClassification(config)

    class Data(torch.utils.data.Dataset):
        def __len__(self):
            return 16

        def __getitem__(self, i):
            g = torch.Generator().manual_seed(i)
            return {"input_ids": torch.randint(0, 40, (8,), generator=g), "labels": torch.tensor(i % 2)}

    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / "out"),
        max_steps=4,
        per_device_train_batch_size=4,
        logging_steps=1,
        eval_strategy="steps",
        eval_steps=2,
        report_to="none",
        use_cpu=True,
        save_strategy="no",
        run_name="tiny-bert",
        disable_tqdm=True,
    )
    trainer = transformers.Trainer(
        model=model, args=args, train_dataset=Data(), eval_dataset=Data(), callbacks=[WandbCallback(log_model="end")]
    )
    trainer.train()
    run = nbtrack.run
    run.finish()
    record = read_run(store_dir, "huggingface", run.id)
    assert record.name == "tiny-bert" and record.config["max_steps"] == 4 and record.config["hidden_size"] == 16
    train_steps = [r["train/global_step"] for r in record.rows() if "train/loss" in r]
    assert train_steps == [1, 2, 3, 4]
    assert [r["train/global_step"] for r in record.rows() if "eval/loss" in r] == [2, 4]
    model_files = {e.path for e in nbtrack.Api(store_dir).artifact("huggingface/model-tiny-bert:latest").files()}
    assert "config.json" in model_files and any(f.endswith(".safetensors") for f in model_files)


def test_xgboost_and_lightgbm_callbacks(store_dir):
    import numpy as np

    xgboost = pytest.importorskip("xgboost")
    lightgbm = pytest.importorskip("lightgbm")
    import nbtrack as wandb

    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 5))
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(int)
    run = wandb.init(project="boost", dir=store_dir)
    dtrain, dvalid = xgboost.DMatrix(X[:150], y[:150]), xgboost.DMatrix(X[150:], y[150:])
    xgboost.train(
        {"objective": "binary:logistic", "eval_metric": "logloss", "max_depth": 2},
        dtrain,
        num_boost_round=5,
        evals=[(dvalid, "valid")],
        callbacks=[wandb.xgboost.WandbCallback(log_model=True)],
    )
    run.finish()
    record = read_run(store_dir, "boost", run.id)
    rows = [r for r in record.rows() if "valid-logloss" in r]
    assert [r["epoch"] for r in rows] == [0, 1, 2, 3, 4] and rows[-1]["valid-logloss"] < rows[0]["valid-logloss"]
    assert record.summary["valid-logloss"]["min"] == rows[-1]["valid-logloss"]
    (chart,) = [r["Feature Importance"] for r in record.rows() if "Feature Importance" in r]
    importance = chart.table()
    assert {name for name, _v in importance["data"]} <= {f"f{i}" for i in range(5)} and importance["data"]
    assert nbtrack.Api(store_dir).artifact(f"boost/{run.id}_model:latest").files()[0].path == "xgb_model.json"

    run = wandb.init(project="boost", dir=store_dir)
    train, valid = lightgbm.Dataset(X[:150], y[:150]), lightgbm.Dataset(X[150:], y[150:])
    booster = lightgbm.train(
        {"objective": "binary", "metric": "binary_logloss", "verbose": -1, "num_leaves": 4},
        train,
        num_boost_round=5,
        valid_sets=[valid],
        valid_names=["valid"],
        callbacks=[wandb.lightgbm.wandb_callback()],
    )
    wandb.lightgbm.log_summary(booster, save_model_checkpoint=True)
    run.finish()
    record = read_run(store_dir, "boost", run.id)
    assert [r["iteration"] for r in record.rows() if "valid_binary_logloss" in r] == [0, 1, 2, 3, 4]
    assert record.config["num_leaves"] == 4 and "best_iteration" in record.summary
    assert any("Feature Importance" in r for r in record.rows())
    assert nbtrack.Api(store_dir).artifact(f"boost/{run.id}_model:latest").files()[0].path == "model.txt"


@pytest.mark.parametrize(
    ("module", "library", "extra"),
    [
        ("nbtrack.integration.xgboost", "xgboost", "xgboost"),
        ("nbtrack.integration.lightgbm", "lightgbm", "lightgbm"),
        ("nbtrack.integration.lightning", "lightning", "lightning"),
        ("nbtrack.integration.transformers", "transformers", "transformers"),
        ("nbtrack.integration.keras", "keras", "keras"),
    ],
)
def test_a_missing_framework_is_a_usage_error_naming_the_extra(monkeypatch, module, library, extra):
    import sys

    monkeypatch.setitem(sys.modules, library, None)  # as if it were not installed
    monkeypatch.delitem(sys.modules, module, raising=False)
    with pytest.raises(nbtrack.UsageError, match=rf"needs {library}: pip install 'nbtrack\[{extra}\]'"):
        importlib.import_module(module)


def test_sweeps_without_optuna_say_which_extra(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "optuna", None)
    with pytest.raises(nbtrack.UsageError, match=r"pip install 'nbtrack\[sweeps\]'"):
        nbtrack.sweep({"method": "random", "parameters": {"x": {"values": [1]}}})
