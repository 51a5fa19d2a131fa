import datetime

import pytest

import nbtrack


def test_runs_newest_first_and_filtered_by_project(store_dir):
    ids = []
    for project in ("a", "b", "a"):
        run = nbtrack.init(project=project, dir=store_dir)
        ids.append(run.id)
        run.finish()
    api = nbtrack.Api(store_dir)
    assert [r.id for r in api.runs("a")] == [ids[2], ids[0]]
    assert [r.id for r in api.runs()] == [ids[2], ids[1], ids[0]]
    assert [r.id for r in api.runs(limit=1)] == [ids[2]]
    assert api.runs("missing") == []


def test_record_fields(store_dir):
    run = nbtrack.init(
        project="p",
        entity="team",
        dir=store_dir,
        name="nm",
        notes="nt",
        tags=["x", "y"],
        group="g",
        job_type="eval",
        config={"lr": 0.5},
    )
    run.log({"loss": 0.3})
    run.finish()
    r = nbtrack.Api(store_dir).run(f"p/{run.id}")
    assert (r.id, r.name, r.project, r.entity, r.state) == (run.id, "nm", "p", "team", "finished")
    assert (r.config, r.summary, r.tags, r.notes, r.group, r.job_type) == (
        {"lr": 0.5},
        {"loss": 0.3},
        ("x", "y"),
        "nt",
        "g",
        "eval",
    )
    assert isinstance(r.created_at, datetime.datetime) and r.created_at.tzinfo is not None
    assert abs(r.created_at.timestamp() - run.start_time) < 1
    assert r.path == f"team/p/{run.id}"
    assert nbtrack.Api(store_dir).run(f"team/p/{run.id}").id == run.id


def test_history_columns_and_key_filter(store_dir):
    run = nbtrack.init(project="p", dir=store_dir)
    run.log({"loss": 1.0, "acc": 0.1})
    run.log({"acc": 0.2})
    run.log({"loss": 0.5, "text": "hello"})
    run.finish()
    record = nbtrack.Api(store_dir).run(f"p/{run.id}")
    rows = record.rows()
    assert [r["_step"] for r in rows] == [0, 1, 2]
    assert all({"_step", "_timestamp", "_runtime"} <= r.keys() for r in rows)
    assert rows[0]["_timestamp"] <= rows[1]["_timestamp"] <= rows[2]["_timestamp"]
    assert 0 <= rows[0]["_runtime"] <= rows[2]["_runtime"]
    assert rows[2]["text"] == "hello"
    loss = record.rows(keys=["loss"])
    assert [(r["_step"], r["loss"]) for r in loss] == [(0, 1.0), (2, 0.5)]
    assert all("acc" not in r for r in loss)
    assert record.rows(keys="acc")[1]["acc"] == 0.2


def test_api_defaults_to_nbtrack_dir_and_handles_an_empty_dir(store_dir, monkeypatch, tmp_path):
    assert nbtrack.Api(tmp_path / "empty").runs() == []
    with pytest.raises(nbtrack.UsageError, match="no run 'x' in project 'p'"):
        nbtrack.Api(tmp_path / "empty").run("p/x")
    monkeypatch.setenv("NBTRACK_DIR", str(store_dir))
    run = nbtrack.init(project="p")
    run.finish()
    assert nbtrack.Api().run(f"p/{run.id}").id == run.id


@pytest.mark.parametrize("bad", ["just-an-id", "a/b/c/d", 5])
def test_bad_run_paths(bad):
    with pytest.raises(nbtrack.UsageError, match="expected 'project/run_id'"):
        nbtrack.Api().run(bad)


def test_history_of_several_keys_across_packed_and_json_rows(store_dir):
    run = nbtrack.init(project="p", dir=store_dir)
    run.log({"a": 1.0, "b": 2, "c": True})  # packed
    run.log({"a": 3.0, "s": "text"})  # JSON (a string)
    run.log({"b": 5, "c": False})  # packed, another key set
    run.log({"d": 1.5})  # neither wanted key
    run.finish()
    record = nbtrack.Api(store_dir).run(f"p/{run.id}")
    rows = [{k: v for k, v in r.items() if not k.startswith("_") or k == "_step"} for r in record.rows(keys=["a", "c"])]
    assert rows == [{"_step": 0, "a": 1.0, "c": True}, {"_step": 1, "a": 3.0}, {"_step": 2, "c": False}]
    assert type(rows[0]["c"]) is bool and [r["b"] for r in record.rows(keys=["b"])] == [2, 5]


def test_a_running_run_of_another_machine_reads_crashed_after_stale_after(store_dir, monkeypatch):
    """A run owned by another machine (or an earlier boot) cannot be checked by pid:
    its heartbeat decides, against Api(stale_after=) or NBTRACK_STALE_AFTER (60 s)."""
    import sqlite3
    import time

    run = nbtrack.init(project="p", dir=store_dir, id="elsewhere")
    run.finish()
    con = sqlite3.connect(store_dir / "nbtrack" / "nbtrack.db")
    con.execute(
        "UPDATE run_state SET state = 'running', boot_id = 'another-machine', heartbeat = ?", (time.time() - 30,)
    )
    con.commit()
    assert nbtrack.Api(store_dir).run("p/elsewhere").state == "running"  # 30 s < 60 s
    assert nbtrack.Api(store_dir, stale_after=10).run("p/elsewhere").state == "crashed"
    monkeypatch.setenv("NBTRACK_STALE_AFTER", "5")
    assert nbtrack.Api(store_dir).run("p/elsewhere").state == "crashed"


FILTERS = [
    {"state": "finished"},
    {"state": "crashed"},
    {"state": {"$in": ["failed", "running"]}},
    {"config.lr": {"$lt": 0.05}},
    {"config.lr": {"$gte": 0.02, "$lte": 0.08}},
    {"config.lr": 0.03},
    {"config.opt": "adam"},
    {"config.width": 64},  # a list holding 64 matches too
    {"config.flag": True},
    {"config.nested.depth": {"$gt": 2}},
    {"summary_metrics.loss": {"$gt": 0.5}},
    {"summary.loss": {"$lte": 0.2}},
    {"tags": "even"},
    {"group": "g1", "job_type": "train"},
    {"display_name": {"$in": ["run-3", "run-7", "nope"]}},
    {"$or": [{"config.opt": "sgd"}, {"summary_metrics.loss": {"$lt": 0.1}}]},
    {"$or": [{"config.opt": "sgd"}, {"notes": {"$regex": "x"}}]},  # one branch SQL cannot judge
    {"$and": [{"tags": "odd"}, {"config.lr": {"$gt": 0.04}}]},
    {"config.lr": {"$ne": 0.03}},
    {"config.missing": {"$exists": False}},
]


@pytest.mark.parametrize("filters", FILTERS, ids=[str(f) for f in FILTERS])
def test_filters_narrowed_in_sql_match_exactly_what_python_matches(store_dir, filters):
    """Api.runs narrows filters in SQL (a superset) before matching them exactly: the runs
    found are those the Python matcher finds over every run, for strings, numbers,
    lists, booleans, missing keys, states and combinations."""
    from nbtrack import run_filters

    opts = ["adam", "sgd", 3, None]
    for i in range(10):
        config = {"lr": i / 100, "opt": opts[i % 4], "flag": i % 2 == 0, "nested": {"depth": i % 4}}
        if i % 3 == 0:
            config["width"] = [32, 64] if i % 2 else 64
        if i == 9:
            config["lr"] = "high"  # not a number: left to the exact match
        run = nbtrack.init(
            project="f", dir=store_dir, name=f"run-{i}", config=config, tags=["even" if i % 2 == 0 else "odd"],
            group=f"g{i % 2}", job_type="train" if i < 5 else "eval", notes="xy" if i == 4 else None,
            settings={"system_interval": 0},
        )  # fmt: skip
        run.log({"loss": 1 - i / 10})
        run.finish(exit_code=1 if i == 8 else 0)
    api = nbtrack.Api(store_dir)
    every = api.runs("f")
    expected = [r.id for r in every if run_filters.matches(r, filters)]
    assert [r.id for r in api.runs("f", filters=filters)] == expected
    where, _args = run_filters.sql_prefilter(filters)
    unnarrowed = [
        {"config.flag": True},
        {"config.nested.depth": {"$gt": 2}},
        {"config.lr": {"$ne": 0.03}},
        {"config.missing": {"$exists": False}},
    ]
    unnarrowed.append({"$or": [{"config.opt": "sgd"}, {"notes": {"$regex": "x"}}]})
    assert bool(where) == (filters not in unnarrowed)  # SQL narrows every other one
