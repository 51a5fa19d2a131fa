"""Images, videos, histograms and tables in log(): files in the run folder, references
in the rows, MediaRef from the Api.  Real numpy, Pillow and torch."""

from __future__ import annotations

import io
import json
import os

import pytest

import nbtrack
from nbtrack.media import encode_png

np = pytest.importorskip("numpy", reason="media arrays need numpy (the media extra)")
PILImage = pytest.importorskip("PIL.Image", reason="Pillow is in the media extra")


def _start(store_dir, **kw):
    return nbtrack.init(project="m", dir=str(store_dir), **kw)


def _record(store_dir, run):
    return nbtrack.Api(str(store_dir)).run(f"m/{run.id}")


def _media_files(run):
    folder = os.path.join(run.dir, "media")
    return sorted(os.listdir(folder)) if os.path.isdir(folder) else []


def test_numpy_image_round_trips_through_the_store(store_dir):
    pixels = np.random.RandomState(1).randint(0, 256, (12, 17, 3), dtype=np.uint8)
    with _start(store_dir) as run:
        run.log({"sample": nbtrack.Image(pixels, caption="epoch 0"), "loss": 0.5})
    row = _record(store_dir, run).rows()[0]
    ref = row["sample"]
    assert isinstance(ref, nbtrack.MediaRef) and ref.kind == "image"
    assert ref["caption"] == "epoch 0" and (ref["width"], ref["height"]) == (17, 12)
    assert ref["path"].startswith("media/") and ref.file.is_file()
    assert str(ref.file).startswith(run.dir + os.sep)
    # the PNG we encode decodes (with Pillow) to exactly the logged pixels
    np.testing.assert_array_equal(ref.to_numpy(), pixels)
    assert row["loss"] == 0.5


@pytest.mark.parametrize("shape", [(6, 5), (6, 5, 1), (6, 5, 4), (3, 6, 5)])
def test_image_layouts(store_dir, shape):
    arr = np.random.RandomState(2).randint(0, 256, shape, dtype=np.uint8)
    with _start(store_dir) as run:
        run.log({"x": nbtrack.Image(arr)})
    pixels = _record(store_dir, run).rows()[0]["x"].to_numpy()
    expected = {(6, 5, 1): lambda a: a[..., 0], (3, 6, 5): lambda a: a.transpose(1, 2, 0)}.get(shape, lambda a: a)
    np.testing.assert_array_equal(pixels, expected(arr))


def test_float_images_in_0_1_are_scaled_and_torch_channels_first_is_transposed(store_dir):
    torch = pytest.importorskip("torch")
    grey = np.linspace(0, 1, 20).reshape(4, 5)
    chw = torch.arange(3 * 4 * 5, dtype=torch.uint8).reshape(3, 4, 5)
    with _start(store_dir) as run:
        run.log({"grey": nbtrack.Image(grey), "rgb": nbtrack.Image(chw)})
    row = _record(store_dir, run).rows()[0]
    np.testing.assert_array_equal(row["grey"].to_numpy(), np.round(grey * 255).astype(np.uint8))
    np.testing.assert_array_equal(row["rgb"].to_numpy(), chw.numpy().transpose(1, 2, 0))


def test_pil_images_and_image_files(store_dir, tmp_path):
    pil = PILImage.new("RGB", (9, 7), (10, 200, 30))
    jpeg = tmp_path / "photo.jpg"
    pil.save(jpeg, format="JPEG")
    with _start(store_dir) as run:
        run.log({"pil": nbtrack.Image(pil), "file": nbtrack.Image(str(jpeg), caption="cam")})
    row = _record(store_dir, run).rows()[0]
    assert row["pil"].to_numpy()[0, 0].tolist() == [10, 200, 30]
    assert row["file"]["format"] == "jpg" and row["file"].file.suffix == ".jpg"
    assert row["file"].read_bytes() == jpeg.read_bytes()  # files are stored as they are
    assert (row["file"]["width"], row["file"]["height"]) == (9, 7)


def test_same_content_is_stored_once(store_dir):
    pixels = np.zeros((4, 4), dtype=np.uint8)
    with _start(store_dir) as run:
        for _ in range(5):
            run.log({"a": nbtrack.Image(pixels), "b": nbtrack.Image(pixels.copy())})
        run.log({"a": nbtrack.Image(pixels + 1)})
    rows = _record(store_dir, run).rows(keys=["a"])
    assert len({r["a"]["path"] for r in rows}) == 2
    assert len(_media_files(run)) == 2


def test_videos_from_files_and_from_frames(store_dir, tmp_path):
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(64))
    frames = np.random.RandomState(3).randint(0, 256, (6, 3, 10, 12), dtype=np.uint8)
    with _start(store_dir) as run:
        run.log({"file": nbtrack.Video(str(clip)), "frames": nbtrack.Video(frames, fps=5, caption="c")})
    row = _record(store_dir, run).rows()[0]
    assert row["file"].kind == "video" and row["file"].read_bytes() == clip.read_bytes()
    gif = row["frames"]
    assert gif["format"] == "gif" and gif["caption"] == "c"
    with PILImage.open(gif.file) as img:
        assert img.n_frames == 6 and img.size == (12, 10)
        assert img.info["duration"] == 200


def test_histograms_from_values_and_from_bins(store_dir):
    values = np.random.RandomState(4).normal(size=5000)
    counts, edges = np.histogram(values, bins=20)
    with _start(store_dir) as run:
        run.log({"w": nbtrack.Histogram(np.append(values, [np.nan, np.inf]), num_bins=20)})
        run.log({"w": nbtrack.Histogram(np_histogram=(counts[:5], edges[:6]))})
        run.log({"w": nbtrack.Histogram([1.0, 1.0, 1.0], num_bins=4)})  # pure Python lists too
    rows = _record(store_dir, run).rows()
    assert rows[0]["w"].kind == "histogram"
    assert rows[0]["w"]["values"] == counts.tolist() and rows[0]["w"]["bins"] == pytest.approx(edges.tolist())
    assert rows[1]["w"]["values"] == counts[:5].tolist()
    assert sum(rows[2]["w"]["values"]) == 3 and len(rows[2]["w"]["bins"]) == 5
    assert rows[0]["w"].file is None


def test_tables_with_image_cells(store_dir):
    pixels = np.full((3, 3), 128, dtype=np.uint8)
    table = nbtrack.Table(columns=["id", "label", "score", "image"], data=[[1, "cat", 0.9, nbtrack.Image(pixels)]])
    table.add_data(2, "dog", None, None)
    with _start(store_dir) as run:
        run.log({"preds": table})
    ref = _record(store_dir, run).rows()[0]["preds"]
    assert ref.kind == "table" and ref["columns"] == ["id", "label", "score", "image"] and ref["rows"] == 2
    body = ref.table()
    assert body["data"][1] == [2, "dog", None, None]
    cell = body["data"][0][3]
    assert cell["_type"] == "image" and (ref.file.parent / os.path.basename(cell["path"])).is_file()


def test_lists_of_images_and_media_in_the_summary(store_dir):
    imgs = [nbtrack.Image(np.full((2, 2), i, dtype=np.uint8)) for i in range(3)]
    with _start(store_dir) as run:
        run.log({"batch": imgs})
        run.summary["best"] = nbtrack.Image(np.ones((2, 2), dtype=np.uint8))
    record = _record(store_dir, run)
    batch = record.rows()[0]["batch"]
    assert [r.kind for r in batch] == ["image"] * 3 and len({r["path"] for r in batch}) == 3
    assert isinstance(record.summary["best"], nbtrack.MediaRef)
    assert isinstance(record.summary["batch"][0], nbtrack.MediaRef)
    assert record.summary["best"].to_numpy().tolist() == [[1, 1], [1, 1]]


def test_nested_media_keys_are_flattened_and_bad_values_keep_the_rest(store_dir):
    with _start(store_dir) as run:
        with pytest.raises(TypeError, match=r"cannot log 'val/bad' \(builtins.object\)"):
            run.log({"val": {"img": nbtrack.Image(np.zeros((2, 2), dtype=np.uint8)), "bad": object(), "loss": 1.5}})
    row = _record(store_dir, run).rows()[0]
    assert row["val/img"].kind == "image" and row["val/loss"] == 1.5 and "val/bad" not in row


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: nbtrack.Image(np.zeros((2, 2, 7))), r"Image: expected an image array of shape"),
        (
            lambda: nbtrack.Image(b"\x89PNG"),
            r"Image: data must be an array, a PIL image, a matplotlib figure or a file path, got bytes",
        ),
        (lambda: nbtrack.Image("notes.txt"), r"Image: notes.txt is not one of the accepted formats"),
        (lambda: nbtrack.Image("missing.png"), r"Image: cannot read missing.png"),
        (lambda: nbtrack.Image(np.zeros((2, 2)), caption=3), r"Image: caption must be a string"),
        (
            lambda: nbtrack.Video(np.zeros((2, 2, 2))),
            r"Video: frames must have shape \(time, channels, height, width\)",
        ),
        (lambda: nbtrack.Video("clip.mp4", fps=0), r"Video: fps must be a number"),
        (lambda: nbtrack.Histogram([1, 2], num_bins=0), r"Histogram: num_bins must be an integer from 1 to 512"),
        (lambda: nbtrack.Histogram(), r"Histogram: pass either sequence"),
        (lambda: nbtrack.Histogram([float("nan")]), r"Histogram: sequence has no finite values"),
        (lambda: nbtrack.Histogram(np_histogram=([1, 2], [0, 1])), r"len\(edges\) == len\(counts\) \+ 1"),
        (lambda: nbtrack.Histogram(["a"]), r"Histogram: sequence must hold numbers"),
        (lambda: nbtrack.Table(columns=["a"], data=[[1, 2]]), r"Table: row 0 has 2 cells, but there are 1 columns"),
        (lambda: nbtrack.Table(columns="ab"), r"Table: columns must be a list of strings"),
    ],
)
def test_bad_media_arguments_name_what_is_accepted(make, message):
    with pytest.raises((TypeError, ValueError), match=message):
        make()


def test_encode_png_matches_pillow_for_every_colour_type():
    rng = np.random.RandomState(5)
    for shape in [(5, 7), (5, 7, 2), (5, 7, 3), (5, 7, 4)]:
        arr = rng.randint(0, 256, shape, dtype=np.uint8)
        with PILImage.open(io.BytesIO(encode_png(arr))) as img:
            np.testing.assert_array_equal(np.asarray(img), arr)


def test_media_rows_do_not_slow_the_numeric_rows(store_dir):
    # numeric rows stay packed; only rows holding media are JSON
    with _start(store_dir) as run:
        for i in range(50):
            run.log({"loss": 1.0 / (i + 1)})
        run.log({"img": nbtrack.Image(np.zeros((2, 2), dtype=np.uint8))})
    import sqlite3

    con = sqlite3.connect(os.path.join(str(store_dir), "nbtrack", "nbtrack.db"))
    kinds = [kid is None for (kid,) in con.execute("SELECT keyset FROM history ORDER BY step")]
    con.close()
    assert kinds == [False] * 50 + [True]
    stored = json.loads(json.dumps(_record(store_dir, run).rows(keys=["img"])[0]["img"]))
    assert stored["_type"] == "image"
