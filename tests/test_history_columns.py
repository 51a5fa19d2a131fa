"""History read back from the columnar chunks equals what was logged, row for row: every
type a row can hold, gaps, runs resumed, rewound and forked, rows put back from a rescue
file, stores written before chunks existed, sampled and bounded reads."""

import math
import sqlite3

import pytest
from conftest import read_run

import nbtrack
from nbtrack.store import columns, reader
from nbtrack.store.columns import CHUNK_ROWS
from nbtrack.store.columns import spread as _picks
from nbtrack.store.packing import RowPacker

STEPS = 2 * CHUNK_ROWS + 777  # two whole chunks and a short last one


def row_at(i):
    """A row whose keys and types vary with the step, as real logging does."""
    row = {"loss": 1.0 / (i + 1), "epoch": i // 100}
    if i % 3 == 0:
        row["flag"] = i % 2 == 0
    if i % 500 == 7:
        row["rare"] = float(i)
    if i % 2 == 0:
        row["mixed"] = i if i % 4 else i * 0.5  # ints and floats under one key
    if i == CHUNK_ROWS + 5:
        row["loss"] = "diverged"  # a string where numbers usually are
    if i == 42:
        row["loss"] = math.nan
    if i == 43:
        row["epoch"] = 2**70  # beyond 64 bits: the row is stored as JSON
    if i % 1000 == 999:
        row["note"] = None
    return row


KEYS = ["loss", "epoch", "flag", "rare", "mixed", "note"]


def same(a, b):
    """Rows equal, NaN equal to NaN."""
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        if x.keys() != y.keys():
            return False
        for k in x:
            u, v = x[k], y[k]
            if isinstance(u, float) and isinstance(v, float) and math.isnan(u) and math.isnan(v):
                continue
            if u != v or type(u) is not type(v):
                return False
    return True


def from_rows(record, key):
    """What the row table holds for ``key``: the reference the chunks must match."""
    con = sqlite3.connect(record.dir.parent.parent.parent / "nbtrack.db")
    return reader.history(con, record._row["pk"], [key])


@pytest.fixture
def logged(store_dir):
    run = nbtrack.init(project="p", dir=store_dir, settings={"system_interval": 0})
    for i in range(STEPS):
        run.log(row_at(i))
    run.finish()
    return read_run(store_dir, "p", run.id)


def test_the_writer_seals_whole_chunks_and_finish_the_rest(logged):
    con = sqlite3.connect(logged.dir.parent.parent.parent / "nbtrack.db")
    spans = con.execute("SELECT first_step, last_step, n FROM history_chunks ORDER BY first_step").fetchall()
    assert spans == [(0, CHUNK_ROWS - 1, CHUNK_ROWS), (CHUNK_ROWS, 2 * CHUNK_ROWS - 1, CHUNK_ROWS),
                     (2 * CHUNK_ROWS, STEPS - 1, 777)]  # fmt: skip
    partial = con.execute("SELECT partial FROM history_chunks WHERE first_step = ?", (CHUNK_ROWS,)).fetchone()[0]
    assert "loss" in partial and "note" in partial  # a string and None under them: read from the rows there


@pytest.mark.parametrize("key", KEYS)
def test_every_value_of_every_key_reads_back_as_logged(logged, key):
    expected = from_rows(logged, key)
    assert expected, key
    assert same(logged.rows([key]), expected)
    series = logged.series(key)
    assert list(series.steps) == [r["_step"] for r in expected]
    assert same(series.rows(), expected)


def test_types_come_back_as_logged(logged):
    values = {r["_step"]: r["mixed"] for r in logged.rows(["mixed"])}
    assert type(values[2]) is int and type(values[4]) is float  # not all floats
    assert all(type(r["flag"]) is bool for r in logged.rows(["flag"]))
    epochs = {r["_step"]: r["epoch"] for r in logged.rows(["epoch"])}
    assert epochs[43] == 2**70 and type(epochs[1000]) is int
    assert logged.series("loss").values[CHUNK_ROWS + 5] == "diverged"


@pytest.mark.parametrize("samples", [1, 2, 7, 500, STEPS + 10])
def test_sampled_reads_equal_picking_from_the_whole(logged, samples):
    for key in ("epoch", "rare", "flag", "loss"):
        expected = from_rows(logged, key)
        picked = [expected[i] for i in _picks(len(expected), samples)]
        assert same(logged.series(key, samples=samples).rows(), picked), (key, samples)
    history = logged.history(samples=samples, keys=["epoch"], pandas=False)
    every = from_rows(logged, "epoch")
    assert same(history, [every[i] for i in _picks(STEPS, samples)])


def test_bounded_reads_cut_chunks_at_the_steps_asked_for(logged):
    lo, hi = CHUNK_ROWS - 3, 2 * CHUNK_ROWS + 2
    for key in ("epoch", "loss", "rare"):
        expected = [r for r in from_rows(logged, key) if lo <= r["_step"] <= hi]
        assert same(logged.series(key, min_step=lo, max_step=hi).rows(), expected)


def test_history_with_several_keys_reads_the_steps_holding_them_all(logged):
    got = logged.history(samples=10**6, keys=["loss", "epoch", "flag"], pandas=False)
    expected = [r for r in reader.history(sqlite3.connect(logged.dir.parent.parent.parent / "nbtrack.db"),
                                          logged._row["pk"], ["loss", "epoch", "flag"])
                if all(k in r for k in ("loss", "epoch", "flag"))]  # fmt: skip
    assert same(got, expected)


def test_many_runs_read_together_equal_each_alone(store_dir):
    ids = []
    for r in range(5):
        with nbtrack.init(project="m", dir=store_dir, settings={"system_interval": 0}) as run:
            for i in range(CHUNK_ROWS + 100 * r):
                run.log({"a": i * 0.5 + r, "b": i})
        ids.append(run.id)
    runs = nbtrack.Api(store_dir).runs("m")
    together = runs.series(["a", "b", "absent"])
    for record in runs:
        for key in ("a", "b"):
            assert same(together[record.id][key].rows(), from_rows(record, key))
        assert len(together[record.id]["absent"]) == 0
    sampled = runs.series("a", samples=50)
    assert all(len(s["a"]) == 50 for s in sampled.values())


def test_a_resumed_run_continues_its_chunks(store_dir):
    run = nbtrack.init(project="p", dir=store_dir, id="r1", settings={"system_interval": 0})
    for i in range(CHUNK_ROWS + 10):
        run.log({"a": float(i)})
    run.finish()
    run = nbtrack.init(project="p", dir=store_dir, id="r1", resume="must", settings={"system_interval": 0})
    for i in range(CHUNK_ROWS + 10, 2 * CHUNK_ROWS + 50):
        run.log({"a": float(i)})
    run.finish()
    record = read_run(store_dir, "p", "r1")
    assert list(record.series("a").values) == [float(i) for i in range(2 * CHUNK_ROWS + 50)]
    assert same(record.rows(["a"]), from_rows(record, "a"))


def test_a_rewound_run_drops_the_chunks_past_its_step(store_dir):
    run = nbtrack.init(project="p", dir=store_dir, id="rw", settings={"system_interval": 0})
    for i in range(2 * CHUNK_ROWS + 10):
        run.log({"a": float(i)})
    run.finish()
    step = CHUNK_ROWS + 20
    run = nbtrack.init(project="p", dir=store_dir, resume_from=f"rw?_step={step}", settings={"system_interval": 0})
    for _ in range(30):
        run.log({"a": -1.0})
    run.finish()
    record = read_run(store_dir, "p", "rw")
    values = list(record.series("a").values)
    assert values == [float(i) for i in range(step + 1)] + [-1.0] * 30
    assert same(record.rows(["a"]), from_rows(record, "a"))


def test_a_forked_run_reads_its_copied_steps(store_dir):
    run = nbtrack.init(project="p", dir=store_dir, id="src", settings={"system_interval": 0})
    for i in range(CHUNK_ROWS + 10):
        run.log({"a": float(i)})
    run.finish()
    fork = nbtrack.init(project="p", dir=store_dir, fork_from="src?_step=100", settings={"system_interval": 0})
    fork.log({"a": -5.0})
    fork.finish()
    assert list(read_run(store_dir, "p", fork.id).series("a").values) == [float(i) for i in range(101)] + [-5.0]


def test_rows_put_back_below_the_sealed_steps_are_read(store_dir):
    run = nbtrack.init(project="p", dir=store_dir, id="gap", settings={"system_interval": 0})
    for i in range(CHUNK_ROWS + 10):
        if i != 50:
            run.log({"a": float(i)}, step=i)
    run.finish()
    store = run._sink.store
    store.replay_rows(run._sink.pk, [(50, 1.0, 0.5, None, {"a": 50.0})])  # as a rescue file's replay does
    record = read_run(store_dir, "p", "gap")
    assert list(record.series("a").values) == [float(i) for i in range(CHUNK_ROWS + 10)]


def test_a_store_written_before_chunks_is_read_and_sealed_in_place(store_dir):
    """A schema-4 store (no chunk tables) with a run of packed rows, as nbtrack wrote
    them before: read right, then upgraded and sealed on the first read."""
    from nbtrack.store.schema import MIGRATIONS

    folder = store_dir / "nbtrack"
    (folder / "runs" / "p" / "old").mkdir(parents=True)
    con = sqlite3.connect(folder / "nbtrack.db")
    con.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    for number in range(1, 5):
        MIGRATIONS[number](con)
    con.execute("INSERT INTO meta VALUES ('schema_version', '4')")
    con.execute(
        "INSERT INTO runs (pk, project, run_id, name, mode, created_at, folder) "
        "VALUES (1, 'p', 'old', 'old-run', 'offline', 1.0, 'runs/p/old')"
    )
    con.execute(
        "INSERT INTO run_state (run_pk, state, started_at, heartbeat, last_step) VALUES (1, 'finished', 1, 2, 0)"
    )
    con.execute("INSERT INTO configs VALUES (1, '{}')")
    con.execute("INSERT INTO summaries VALUES (1, '{}')")
    packer = RowPacker()
    rows = []
    for i in range(CHUNK_ROWS + 300):
        keyset, blob = packer.encode({"a": i * 0.25, "n": i})
        if keyset.id is None:
            con.execute("INSERT INTO keysets (spec) VALUES (?)", (keyset.spec,))
            keyset.id = con.execute("SELECT id FROM keysets WHERE spec = ?", (keyset.spec,)).fetchone()[0]
        rows.append((1, i, 1000.0 + i, float(i), None, keyset.id, blob))
    con.executemany("INSERT INTO history VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
    con.commit()
    con.close()
    record = nbtrack.Api(store_dir).run("p/old")
    assert list(record.series("n").values) == list(range(CHUNK_ROWS + 300))
    picks = _picks(CHUNK_ROWS + 300, 3)
    assert list(record.series("a", samples=3).values) == [i * 0.25 for i in picks]
    con = sqlite3.connect(folder / "nbtrack.db")
    assert con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == "5"
    assert con.execute("SELECT COUNT(*), SUM(n) FROM history_chunks").fetchone() == (2, CHUNK_ROWS + 300)
    assert list(nbtrack.Api(store_dir).run("p/old").series("a").timestamps)[:2] == [1000.0, 1001.0]


def test_chunks_are_derived_data_and_can_be_made_again(logged):
    """Dropping every chunk loses nothing: reads fall back to the rows, and sealing
    again makes the same chunks."""
    path = logged.dir.parent.parent.parent / "nbtrack.db"
    con = sqlite3.connect(path)
    before = con.execute("SELECT run_pk, key, first_step, kind, count, idx, vals, kinds FROM history_columns"
                         " ORDER BY key, first_step").fetchall()  # fmt: skip
    con.execute("DELETE FROM history_columns")
    con.execute("DELETE FROM history_chunks")
    con.commit()
    fresh = read_run(path.parent.parent, "p", logged.id)
    assert same(fresh.rows(["epoch"]), from_rows(fresh, "epoch"))  # sealed again on this read
    assert columns.unsealed(sqlite3.connect(path), fresh._row["pk"]) == 0
    after = sqlite3.connect(path).execute("SELECT run_pk, key, first_step, kind, count, idx, vals, kinds"
                                          " FROM history_columns ORDER BY key, first_step").fetchall()  # fmt: skip
    assert after == before


def test_bad_arguments_to_series_name_the_argument(logged):
    with pytest.raises(nbtrack.UsageError, match="series: key must be a string, got 3"):
        logged.series(3)
    for bad in (0, -1, True, 2.5, "10"):
        with pytest.raises(nbtrack.UsageError, match="series: samples must be a positive integer or None"):
            logged.series("loss", samples=bad)
        with pytest.raises(nbtrack.UsageError, match="series: samples must be a positive integer or None"):
            nbtrack.Api(logged.dir.parent.parent.parent.parent).runs("p").series("loss", samples=bad)
