"""Artifacts: versions, aliases, dedup, lineage, downloads, as wandb code uses them."""

import os
import tracemalloc
from pathlib import Path

import pytest

import nbtrack
from nbtrack.store.objects import hash_file


def objects(store_dir: Path) -> list[Path]:
    root = store_dir / "nbtrack" / "objects"
    return [p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_logged_changed_logged_again_used_downloaded_and_lineage(store_dir, tmp_path):
    data = write(tmp_path / "data" / "train.csv", "x,y\n1,2\n")
    producer = nbtrack.init(project="p", dir=store_dir, name="producer")
    first = nbtrack.Artifact("dataset", type="dataset", description="raw", metadata={"rows": 1})
    first.add_file(str(data))
    with first.new_file("labels.txt") as f:
        f.write("cat\ndog\n")
    logged = producer.log_artifact(first, aliases=["raw"])
    assert (logged.name, logged.version, logged.aliases) == ("dataset:v0", "v0", ["latest", "raw"])
    assert sorted(e.path for e in logged.files()) == ["labels.txt", "train.csv"]

    write(data, "x,y\n1,2\n3,4\n")  # the data changes: a new version
    second = nbtrack.Artifact("dataset", type="dataset", metadata={"rows": 2})
    second.add_file(str(data))
    second.add_file(str(tmp_path / "data" / "train.csv"), name="copy/train.csv")
    logged2 = producer.log_artifact(second, aliases=["raw"])  # "raw" moves to the new version
    assert logged2.version == "v1" and logged2.digest != logged.digest
    producer.finish()

    consumer = nbtrack.init(project="p", dir=store_dir, name="consumer")
    latest = consumer.use_artifact("dataset:latest")
    assert (latest.version, latest.metadata, sorted(latest.aliases)) == ("v1", {"rows": 2}, ["latest", "raw"])
    old = consumer.use_artifact("p/dataset:v0", type="dataset")
    assert old.aliases == [] and old.description == "raw"
    folder = Path(old.download(str(tmp_path / "dl")))
    assert (folder / "train.csv").read_text() == "x,y\n1,2\n" and (folder / "labels.txt").read_text() == "cat\ndog\n"
    assert Path(latest.download(str(tmp_path / "dl1")), "copy", "train.csv").read_text() == "x,y\n1,2\n3,4\n"
    old.verify(str(folder))
    (folder / "train.csv").write_text("edited")
    with pytest.raises(ValueError, match="missing or differs"):
        old.verify(str(folder))
    consumer.finish()

    # lineage, from the artifacts and from the runs, read back through the Api
    api = nbtrack.Api(store_dir)
    v0 = api.artifact("p/dataset:v0")
    assert v0.logged_by().id == producer.id
    assert [r.id for r in v0.used_by()] == [consumer.id]
    assert [a.name for a in api.run(f"p/{producer.id}").logged_artifacts()] == ["dataset:v0", "dataset:v1"]
    assert [a.name for a in api.run(f"p/{consumer.id}").used_artifacts()] == ["dataset:v1", "dataset:v0"]
    assert [a.version for a in api.artifacts("dataset", "p/dataset")] == ["v1", "v0"]
    assert api.artifact("p/dataset:raw").version == "v1"
    assert api.artifact_exists("p/dataset:v1") and not api.artifact_exists("p/dataset:v7")


def test_identical_content_gives_the_existing_version_and_latest_moves(store_dir, tmp_path):
    a = write(tmp_path / "a.txt", "A")
    b = write(tmp_path / "b.txt", "B")
    run = nbtrack.init(project="p", dir=store_dir)

    def log(path):
        art = nbtrack.Artifact("thing", "data")
        art.add_file(str(path), name="file.txt")
        return run.log_artifact(art)

    assert [log(a).version, log(b).version, log(a).version] == ["v0", "v1", "v0"]
    # latest is the version logged last, even when that is an older one
    assert run.use_artifact("thing:latest").version == "v0"
    assert len([o for o in objects(store_dir) if o.stat().st_size == 1]) == 2  # A and B, stored once each
    run.finish()


def test_the_same_100_mb_logged_twice_is_stored_once_and_hashed_streaming(store_dir, tmp_path):
    big = tmp_path / "weights.bin"
    block = os.urandom(1 << 20)
    with open(big, "wb") as f:
        for _ in range(100):
            f.write(block)
    tracemalloc.start()
    try:
        sha, size = hash_file(big)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert size == 100 << 20 and peak < 8 << 20  # read in chunks, never whole

    run = nbtrack.init(project="p", dir=store_dir)
    for name in ("model-a", "model-b"):  # two artifacts holding the same bytes
        art = nbtrack.Artifact(name, type="model")
        art.add_file(str(big))
        run.log_artifact(art)
    run.log_model(str(big), name="model-c")
    run.finish()
    stored = objects(store_dir)
    assert [p.name for p in stored if p.stat().st_size == 100 << 20] == [sha]
    total = sum(p.stat().st_size for p in stored)
    assert total < 101 << 20, total


def test_add_dir_reference_and_media_in_an_artifact(store_dir, tmp_path):
    folder = tmp_path / "images"
    write(folder / "a" / "1.txt", "one")
    write(folder / "b.txt", "two")
    remote = "s3://bucket/data/shard-0.parquet"
    art = nbtrack.Artifact("bundle", "dataset")
    art.add_dir(str(folder), name="imgs")
    local_refs = art.add_reference((tmp_path / "images").as_uri(), name="ref")
    art.add_reference(remote)
    table = nbtrack.Table(columns=["a", "b"], data=[[1, "x"], [2, "y"]])
    art.add(table, "predictions")
    assert sorted(e.path for e in local_refs) == ["ref/a/1.txt", "ref/b.txt"]
    assert all(e.digest for e in local_refs)  # file:// references are checksummed
    assert art.get_entry("shard-0.parquet").ref == remote and art.get_entry("shard-0.parquet").digest is None

    run = nbtrack.init(project="p", dir=store_dir)
    run.log_artifact(art)
    run.finish()
    back = nbtrack.Api(store_dir).artifact("p/bundle:latest")
    assert sorted(e.path for e in back.files()) == [
        "imgs/a/1.txt",
        "imgs/b.txt",
        "predictions.table.json",
        "ref/a/1.txt",
        "ref/b.txt",
        "shard-0.parquet",
    ]
    got = back.get("predictions")
    assert isinstance(got, nbtrack.Table) and (got.columns, got.data) == (["a", "b"], [[1, "x"], [2, "y"]])
    with pytest.raises(nbtrack.UsageError, match="reference to s3://bucket"):
        back.download(str(tmp_path / "out"))
    out = Path(back.download(str(tmp_path / "out2"), allow_missing_references=True))
    assert (out / "imgs" / "a" / "1.txt").read_text() == "one" and (out / "ref" / "b.txt").read_text() == "two"


def test_an_image_logged_and_put_in_an_artifact_is_stored_once(store_dir):
    np = pytest.importorskip("numpy")
    pixels = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    run = nbtrack.init(project="p", dir=store_dir)
    run.log({"img": nbtrack.Image(pixels)})
    art = nbtrack.Artifact("samples", "images")
    art.add(nbtrack.Image(pixels), "sample")
    run.log_artifact(art)
    run.finish()
    pngs = [p for p in objects(store_dir) if p.read_bytes()[:4] == b"\x89PNG"]
    assert len(pngs) == 1


def test_models_link_into_a_registry_and_aliases_move(store_dir, tmp_path):
    model = write(tmp_path / "model.pt", "weights-1")
    run = nbtrack.init(project="p", dir=store_dir)
    linked = run.link_model(str(model), registered_model_name="classifier", aliases=["staging"])
    assert linked.qualified_name == "model-registry/classifier:v0" and linked.type == "model"
    write(model, "weights-2")
    logged = run.log_model(str(model), name="model.pt")
    again = run.link_artifact(logged, "team/model-registry/classifier", aliases=["staging"])
    assert again.version == "v1"
    path = run.use_model("model-registry/classifier:staging")
    assert Path(path).read_text() == "weights-2"
    run.finish()
    api = nbtrack.Api(store_dir)
    assert [a.version for a in api.artifacts("model", "model-registry/classifier")] == ["v1", "v0"]
    assert api.artifact("model-registry/classifier:v0").file(str(tmp_path / "v0")).endswith("model.pt")


def test_aliases_saved_later_and_versions_deleted(store_dir, tmp_path):
    run = nbtrack.init(project="p", dir=store_dir)
    art = nbtrack.Artifact("d", "data")
    art.add_file(str(write(tmp_path / "x.txt", "x")))
    logged = run.log_artifact(art)
    logged.aliases.append("golden")  # wandb's way: change the list, then save()
    logged.save()
    assert nbtrack.Api(store_dir).artifact("p/d:golden").version == "v0"
    with pytest.raises(nbtrack.UsageError, match="has aliases"):
        logged.delete()
    logged.delete(delete_aliases=True)
    with pytest.raises(nbtrack.UsageError, match="no artifact d:v0 in project 'p'"):
        run.use_artifact("d:v0")
    run.finish()


def test_module_level_twins_work_on_the_current_run_and_say_so_before_init(store_dir, tmp_path):
    with pytest.raises(nbtrack.Error, match=r"nbtrack.log_artifact\(\) was called before nbtrack.init\(\)"):
        nbtrack.log_artifact(str(tmp_path))
    run = nbtrack.init(project="p", dir=store_dir)
    art = nbtrack.Artifact("notes", "text")
    art.add_file(str(write(tmp_path / "n.txt", "hello")))
    assert nbtrack.log_artifact(art).version == "v0"
    assert nbtrack.use_artifact("notes:v0").logged_by().id == run.id
    run.finish()


def test_bad_artifact_input_names_the_argument(store_dir, tmp_path):
    with pytest.raises(nbtrack.UsageError, match=r"name='bad name' is not an artifact name.*make_artifact_name_safe"):
        nbtrack.Artifact("bad name", "data")
    assert nbtrack.util.make_artifact_name_safe("run 1/ckpt:best") == "run_1_ckpt_best"
    with pytest.raises(nbtrack.UsageError, match="type must be a non-empty string"):
        nbtrack.Artifact("ok", "")
    art = nbtrack.Artifact("ok", "data")
    with pytest.raises(nbtrack.UsageError, match="no file at"):
        art.add_file(str(tmp_path / "missing"))
    with pytest.raises(nbtrack.UsageError, match="expected a URI"):
        art.add_reference("just/a/path")
    run = nbtrack.init(project="p", dir=store_dir)
    art.add_file(str(write(tmp_path / "a.txt", "a")))
    logged = run.log_artifact(art)
    with pytest.raises(nbtrack.UsageError, match="is logged and cannot change"):
        logged.add_file(str(tmp_path / "a.txt"), name="b.txt")
    with pytest.raises(nbtrack.UsageError, match=r"no artifact ok:v9 in project 'p' \(it has v0\)"):
        run.use_artifact("ok:v9")
    with pytest.raises(nbtrack.UsageError, match="has type 'data', not 'model'"):
        run.use_artifact("ok:latest", type="model")
    other = nbtrack.Artifact("ok", "model")
    other.add_file(str(tmp_path / "a.txt"))
    with pytest.raises(nbtrack.UsageError, match="has type 'data', not 'model'"):
        run.log_artifact(other)
    with pytest.raises(nbtrack.UsageError, match="aliases: 'a/b' is not an alias"):
        run.log_artifact(art, aliases=["a/b"])
    run.finish()
    with pytest.raises(nbtrack.UsageError, match="log_artifact: run .* is finished"):
        run.log_artifact(art)


def test_a_disabled_run_accepts_artifact_calls_and_stores_nothing(tmp_path):
    run = nbtrack.init(project="p", mode="disabled", dir=tmp_path)
    art = nbtrack.Artifact("d", "data")
    assert run.log_artifact(art) is art
    assert run.use_artifact("d:latest").name == "d"
    assert not (tmp_path / "nbtrack").exists()
    run.finish()


def test_artifact_tags_filter_versions_and_registry_names_may_hold_spaces(store_dir, tmp_path):
    run = nbtrack.init(project="p", dir=store_dir)
    for i, region in enumerate(["us-west-2", "eu-central-1"]):
        art = nbtrack.Artifact("llm", "model")
        art.add_file(str(write(tmp_path / f"w{i}.bin", f"weights {i}")), name="w.bin")
        art.tags = [region, "base"]
        logged = run.log_artifact(art, tags=["candidate"] if i else None)
        run.link_artifact(logged, "wandb-registry-model/Artifact Demo Models")
    logged.tags.append("production")
    logged.save()
    run.finish()
    api = nbtrack.Api(store_dir)
    assert [a.version for a in api.artifacts("model", "p/llm", tags=["base"])] == ["v1", "v0"]
    assert [a.tags for a in api.artifacts("model", "p/llm", tags=["production"])] == [
        ["eu-central-1", "base", "candidate", "production"]
    ]
    registry = api.artifacts(type_name="model", name="wandb-registry-model/Artifact Demo Models", tags=["us-west-2"])
    assert [(a.name, a.tags) for a in registry] == [("Artifact Demo Models:v0", ["us-west-2", "base"])]
    assert api.artifact("wandb-registry-model/Artifact Demo Models:latest").tags[0] == "eu-central-1"
    with pytest.raises(nbtrack.UsageError, match=r"tags: 'bad\\nline' is not an artifact tag"):
        nbtrack.init(project="p", dir=store_dir).log_artifact(nbtrack.Artifact("z", "y"), tags=["ok", "bad\nline"])


def test_tables_with_images_round_trip_through_artifacts_and_join(store_dir):
    np = pytest.importorskip("numpy")
    images = [np.full((4, 4), i * 60, dtype=np.uint8) for i in range(3)]
    run = nbtrack.init(project="p", dir=store_dir)
    raw = nbtrack.Artifact("raw_data", "dataset")
    raw.add(
        nbtrack.Table(columns=["id", "image"], data=[[i, nbtrack.Image(img)] for i, img in enumerate(images)]),
        "raw_examples",
    )
    run.log_artifact(raw)
    scores = nbtrack.Artifact("scores", "dataset")
    scores.add(nbtrack.Table(columns=["id", "score"], data=[[2, 0.9], [0, 0.4], [7, 0.1]]), "score_table")
    run.log_artifact(scores)
    run.finish()

    other = nbtrack.init(project="p", dir=store_dir)
    data_table = other.use_artifact("raw_data:latest").get("raw_examples")
    score_table = other.use_artifact("scores:latest").get("score_table")
    assert data_table.columns == ["id", "image"] and data_table.data[1][1].kind == "image"
    assert np.array_equal(data_table.data[1][1].to_numpy(), images[1])
    joined = nbtrack.JoinedTable(score_table, data_table, "id")
    assert [row[:2] for row in joined.data] == [[2, 0.9], [0, 0.4]]  # id 7 has no image: left out
    summary = nbtrack.Artifact("summary_results", "dataset")
    summary.add(joined, "results")
    summary.add(nbtrack.Image(data_table.data[2][1]), "third")  # an image read back, logged again
    other.log_artifact(summary)
    other.finish()
    back = nbtrack.Api(store_dir).artifact("p/summary_results:latest").get("results")
    assert back.columns == ["id", "score", "image"]
    assert np.array_equal(back.data[0][2].to_numpy(), images[2])  # the image came along with the table
    with pytest.raises(ValueError, match="'name' is not a column of table2"):
        nbtrack.JoinedTable(score_table, data_table, ("id", "name"))


def test_a_file_changed_between_add_file_and_logging_is_versioned_as_stored(store_dir, tmp_path):
    data = write(tmp_path / "d.txt", "old")
    run = nbtrack.init(project="p", dir=store_dir)
    early = nbtrack.Artifact("d", "data")
    early.add_file(str(data))
    write(data, "new!")  # changed after add_file: the bytes logged are the new ones
    logged = run.log_artifact(early)
    again = nbtrack.Artifact("d", "data")
    again.add_file(str(data))
    assert run.log_artifact(again).version == logged.version == "v0"  # the same content, the same version
    assert (Path(logged.download(str(tmp_path / "out"))) / "d.txt").read_text() == "new!"
    run.finish()


KILLED = """
import os, signal, sys
import nbtrack
d, src = sys.argv[1], sys.argv[2]
run = nbtrack.init(project="p", id="killed", dir=d, settings={"system_interval": 0})
art = nbtrack.Artifact("weights", "model")
art.add_file(src)
run.log_artifact(art, aliases=["best"])
run.define_metric("loss", summary="min")
run.alert("saved", "weights are in")
run.save(src, policy="now")
print("handed over", flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_what_was_handed_over_survives_kill_9(store_dir, tmp_path):
    from conftest import run_python

    src = write(tmp_path / "w.bin", "w" * 10_000)
    proc = run_python(KILLED, argv=[str(store_dir), str(src)], check=False)
    assert proc.returncode == -9 and "handed over" in proc.stdout
    api = nbtrack.Api(store_dir)
    version = api.artifact("p/weights:best")
    assert (Path(version.download(str(tmp_path / "out"))) / "w.bin").read_text() == "w" * 10_000
    record = api.run("p/killed")
    assert [a["title"] for a in record.alerts()] == ["saved"]
    assert [m.name for m in record.metric_definitions] == ["loss"]
    assert record.file("w.bin").download(str(tmp_path / "restored")).read() == "w" * 10_000


def test_threads_logging_artifacts_at_once_get_distinct_versions_and_one_per_content(store_dir, tmp_path):
    import threading

    run = nbtrack.init(project="p", dir=store_dir)
    files = [write(tmp_path / f"f{i}.txt", f"content {i % 4}") for i in range(8)]  # 4 contents, each twice
    logged, errors = [], []

    def log(path):
        try:
            art = nbtrack.Artifact("shared", "data")
            art.add_file(str(path), name="f.txt")
            logged.append(run.log_artifact(art).version)
        except Exception as exc:  # collected: the assertion below names it
            errors.append(exc)

    threads = [threading.Thread(target=log, args=(f,)) for f in files]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    run.finish()
    assert errors == [] and len(logged) == 8
    versions = nbtrack.Api(store_dir).artifacts("data", "p/shared")
    assert sorted(v.version for v in versions) == ["v0", "v1", "v2", "v3"]  # one version per content
    contents = {(Path(v.download(str(tmp_path / v.version))) / "f.txt").read_text() for v in versions}
    assert contents == {f"content {i}" for i in range(4)}
