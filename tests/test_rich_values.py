"""What log() accepts beyond numbers, as wandb does: figures, DataFrames, audio, HTML,
3-D objects, molecules, classes, image overlays, videos in formats, tables, charts."""

import io
import json
import wave

import pytest

import nbtrack

np = pytest.importorskip("numpy")


def logged(store_dir, values, **init):
    run = nbtrack.init(project="rich", dir=store_dir, **init)
    run.log(values)
    run.finish()
    return nbtrack.Api(store_dir).run(f"rich/{run.id}").rows()[0]


def test_a_matplotlib_figure_and_pyplot_become_images(store_dir):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2, 1), dpi=50)
    ax.plot([0, 1, 2], [0, 1, 4])
    plt.figure(figsize=(3, 2), dpi=40)  # pyplot's current figure is another one
    plt.plot([1, 2, 3])
    row = logged(store_dir, {"fig": fig, "current": plt})
    assert row["fig"].kind == "image" and (row["fig"]["width"], row["fig"]["height"]) == (100, 50)
    assert row["current"].kind == "image" and (row["current"]["width"], row["current"]["height"]) == (120, 80)
    assert row["fig"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    plt.close("all")


def test_a_pandas_dataframe_becomes_a_table(store_dir):
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"name": ["a", "b"], "score": [0.5, 0.25], "n": np.array([1, 2], dtype=np.int64)})
    row = logged(store_dir, {"preds": frame})
    assert row["preds"].kind == "table"
    assert row["preds"].table() == {"columns": ["name", "score", "n"], "data": [["a", 0.5, 1], ["b", 0.25, 2]]}
    table = nbtrack.Table(dataframe=frame)
    assert table.get_dataframe().equals(frame.astype({"n": "int64"}))


def test_audio_from_samples_is_a_wav_and_files_are_kept(store_dir, tmp_path):
    t = np.linspace(0, 1, 8000, endpoint=False)
    tone = 0.5 * np.sin(2 * np.pi * 440 * t)
    stereo = np.stack([tone, -tone], axis=1)
    (tmp_path / "clip.mp3").write_bytes(b"ID3fake-mp3")
    row = logged(
        store_dir,
        {
            "tone": nbtrack.Audio(tone, sample_rate=8000, caption="A4"),
            "stereo": nbtrack.Audio(stereo, sample_rate=8000),
            "file": nbtrack.Audio(str(tmp_path / "clip.mp3")),
        },
    )
    with wave.open(io.BytesIO(row["tone"].read_bytes())) as w:
        assert (w.getnchannels(), w.getframerate(), w.getnframes(), w.getsampwidth()) == (1, 8000, 8000, 2)
        samples = np.frombuffer(w.readframes(10), dtype="<i2")
    assert samples.tolist() == (tone[:10] * 32767).round().astype(int).tolist()
    assert row["tone"]["caption"] == "A4" and row["tone"]["duration"] == 1.0
    with wave.open(io.BytesIO(row["stereo"].read_bytes())) as w:
        assert w.getnchannels() == 2
    assert row["file"]["format"] == "mp3" and row["file"].read_bytes() == b"ID3fake-mp3"
    with pytest.raises(ValueError, match="an array needs sample_rate"):
        nbtrack.Audio(tone)


def test_html_from_a_string_a_file_and_an_open_file(store_dir, tmp_path):
    page = tmp_path / "report.html"
    page.write_text("<h1>report</h1>")
    row = logged(
        store_dir,
        {
            "s": nbtrack.Html("<b>bold</b><script>parent.document.title='x'</script>"),
            "f": nbtrack.Html(str(page)),
            "io": nbtrack.Html(io.StringIO("<i>it</i>")),
        },
    )
    assert row["s"].read_bytes() == b"<b>bold</b><script>parent.document.title='x'</script>"
    assert row["f"].read_bytes() == b"<h1>report</h1>" and row["io"].read_bytes() == b"<i>it</i>"
    assert row["s"].kind == "html" and row["s"]["format"] == "html"


def test_object3d_and_molecule_keep_their_files_and_formats(store_dir, tmp_path):
    points = np.random.default_rng(1).normal(size=(50, 3))
    (tmp_path / "mesh.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    (tmp_path / "water.pdb").write_text("HETATM    1  O   HOH A   1       0.000   0.000   0.000\n")
    row = logged(
        store_dir,
        {
            "cloud": nbtrack.Object3D(points),
            "mesh": nbtrack.Object3D(str(tmp_path / "mesh.obj")),
            "boxes": nbtrack.Object3D.from_point_cloud(
                points, boxes=[nbtrack.box3d([0, 0, 0], [1, 1, 1], [1, 0, 0, 0], [255, 0, 0], label="car")]
            ),
            "mol": nbtrack.Molecule(str(tmp_path / "water.pdb")),
        },
    )
    cloud = json.loads(row["cloud"].read_bytes())
    assert row["cloud"]["format"] == "pts.json" and row["cloud"]["points"] == 50
    assert np.allclose(cloud["points"], points)
    assert row["mesh"]["format"] == "obj" and row["mesh"].read_bytes().startswith(b"v 0 0 0")
    assert json.loads(row["boxes"].read_bytes())["boxes"][0]["label"] == "car"
    assert row["mol"].kind == "molecule" and row["mol"]["format"] == "pdb"
    (tmp_path / "x.txt").write_text("x")
    with pytest.raises(ValueError, match="not one of the accepted formats"):
        nbtrack.Molecule(str(tmp_path / "x.txt"))
    with pytest.raises(ImportError, match="pip install rdkit"):
        nbtrack.Molecule.from_smiles("CCO")


def test_image_masks_boxes_and_classes_are_kept_with_the_image(store_dir):
    pixels = np.zeros((8, 10, 3), dtype=np.uint8)
    mask = np.zeros((8, 10), dtype=np.int64)
    mask[2:5, 3:7] = 1
    classes = nbtrack.Classes([{"id": 0, "name": "background"}, {"id": 1, "name": "cat"}])
    image = nbtrack.Image(
        pixels,
        masks={"predictions": {"mask_data": mask, "class_labels": {0: "background", 1: "cat"}}},
        boxes={
            "truth": {
                "box_data": [
                    {"position": {"minX": 0.1, "maxX": 0.5, "minY": 0.2, "maxY": 0.6}, "class_id": 1},
                    {
                        "position": {"middle": [5, 4], "width": 2, "height": 2},
                        "domain": "pixel",
                        "class_id": 1,
                        "box_caption": "cat 0.9",
                        "scores": {"p": np.float32(0.9)},
                    },
                ],
                "class_labels": {1: "cat"},
            }
        },
        classes=classes,
    )
    ref = logged(store_dir, {"seg": image, "classes": classes})["seg"]
    stored_mask = ref["masks"]["predictions"]
    assert stored_mask["class_labels"] == {"0": "background", "1": "cat"}
    from PIL import Image as PILImage

    with PILImage.open(ref.file.parent.parent / stored_mask["path"]) as im:
        assert np.array_equal(np.asarray(im), mask.astype(np.uint8))
    boxes = ref["boxes"]["truth"]["box_data"]
    assert boxes[1]["scores"] == {"p": pytest.approx(0.9)} and boxes[1]["domain"] == "pixel"
    assert ref["classes"] == [{"id": 0, "name": "background"}, {"id": 1, "name": "cat"}]
    with pytest.raises(ValueError, match=r"masks\['m'\]: mask_data must be a 2-D array of integer class ids"):
        nbtrack.Image(pixels, masks={"m": {"mask_data": np.zeros((2, 2, 2), dtype=int)}})
    with pytest.raises(ValueError, match=r"box 0 needs position"):
        nbtrack.Image(pixels, boxes={"b": {"box_data": [{"position": {"x": 1}}]}})


def test_image_mode_file_type_and_normalize(store_dir):
    pytest.importorskip("PIL")
    signed = np.linspace(-1, 1, 16).reshape(4, 4)  # a tanh output
    row = logged(
        store_dir,
        {
            "signed": nbtrack.Image(signed),
            "raw": nbtrack.Image(np.full((4, 4), 0.6), normalize=False),
            "grey": nbtrack.Image(np.zeros((4, 4, 3), dtype=np.uint8), mode="L"),
            "jpeg": nbtrack.Image(np.zeros((4, 4, 3), dtype=np.uint8), file_type="jpg"),
        },
    )
    pixels = row["signed"].to_numpy()
    assert pixels.min() == 0 and pixels.max() == 255
    assert row["raw"].to_numpy().max() == 1  # 0.6 kept as it is (rounded), not scaled to 153
    assert row["grey"].to_numpy().ndim == 2
    assert row["jpeg"]["format"] == "jpg" and row["jpeg"].read_bytes()[:2] == b"\xff\xd8"


def test_video_format_and_fps(store_dir):
    pytest.importorskip("moviepy")
    frames = np.random.default_rng(2).integers(0, 255, (6, 3, 16, 16), dtype=np.uint8)
    row = logged(store_dir, {"gif": nbtrack.Video(frames, fps=6), "mp4": nbtrack.Video(frames, fps=3, format="mp4")})
    assert row["gif"]["format"] == "gif" and row["gif"]["fps"] == 6 and row["gif"].read_bytes()[:4] == b"GIF8"
    assert row["mp4"]["format"] == "mp4" and row["mp4"]["fps"] == 3 and b"ftyp" in row["mp4"].read_bytes()[:16]
    with pytest.raises(ValueError, match="format must be one of"):
        nbtrack.Video(frames, format="avi")


def test_table_add_data_add_column_get_column(store_dir):
    table = nbtrack.Table(columns=["id", "label"])
    table.add_data(1, "cat")
    table.add_data(2, "dog")
    table.add_column("score", np.array([0.9, 0.4]))
    table.add_computed_columns(lambda i, row: {"double": row["id"] * 2})
    assert table.get_column("score") == [0.9, 0.4]
    assert table.get_column("double", convert_to="numpy").tolist() == [2, 4]
    assert table.get_index() == [0, 1]
    with pytest.raises(ValueError, match="has 1 cells for 2 rows"):
        table.add_column("bad", [1])
    with pytest.raises(ValueError, match="no column 'nope'"):
        table.get_column("nope")
    row = logged(
        store_dir, {"t": table, "cells": nbtrack.Table(columns=["img"], data=[[nbtrack.Image(np.zeros((2, 2)))]])}
    )
    assert row["t"].table()["data"] == [[1, "cat", 0.9, 2], [2, "dog", 0.4, 4]]
    assert row["cells"].table()["data"][0][0]["_type"] == "image"


def test_plot_charts_hold_a_table_and_a_spec(store_dir):
    table = nbtrack.Table(columns=["x", "y", "kind"], data=[[i, i * i, "a" if i % 2 else "b"] for i in range(6)])
    y_true = np.array([0, 0, 1, 1, 2, 2])
    probas = np.array(
        [[0.8, 0.1, 0.1], [0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.5, 0.4, 0.1], [0.1, 0.1, 0.8], [0.2, 0.2, 0.6]]
    )
    row = logged(
        store_dir,
        {
            "line": nbtrack.plot.line(table, "x", "y", title="squares"),
            "scatter": nbtrack.plot.scatter(table, "x", "y"),
            "bar": nbtrack.plot.bar(table, "kind", "y"),
            "hist": nbtrack.plot.histogram(table, "y"),
            "series": nbtrack.plot.line_series([0, 1, 2], [[1, 2, 3], [3, 2, 1]], keys=["up", "down"], xname="epoch"),
            "cm": nbtrack.plot.confusion_matrix(probs=probas, y_true=y_true, class_names=["a", "b", "c"]),
            "roc": nbtrack.plot.roc_curve(y_true, probas, labels=["a", "b", "c"]),
            "pr": nbtrack.plot.pr_curve(y_true, probas, labels=["a", "b", "c"], classes_to_plot=[2]),
        },
    )
    assert row["line"].kind == "chart" and row["line"]["spec"] == {
        "kind": "line",
        "x": "x",
        "y": "y",
        "series": None,
        "title": "squares",
    }
    assert row["line"].table()["data"][3] == [3, 9, "a"]
    series = row["series"].table()
    assert series["columns"] == ["lineKey", "lineVal", "step"] and series["data"][3] == ["down", 3, 0]
    cm = {(a, p): n for a, p, n in row["cm"].table()["data"]}
    # argmax predictions: a a b a c c -> actual a: a,a; actual b: b,a; actual c: c,c
    assert (cm["a", "a"], cm["b", "b"], cm["b", "a"], cm["c", "c"], cm["a", "c"]) == (2, 1, 1, 2, 0)
    roc = row["roc"].table()["data"]
    by_class = {c: [(f, t) for k, f, t in roc if k == c] for c in "abc"}
    assert by_class["c"][0] == (0.0, 0.0) and by_class["c"][-1] == (1.0, 1.0)
    assert (0.0, 1.0) in by_class["c"]  # class c's scores separate it perfectly
    assert {k for k, _r, _p in row["pr"].table()["data"]} == {"c"}
    with pytest.raises(ValueError, match="'z' is not a column of the table"):
        nbtrack.plot.line(table, "x", "z")


def test_values_log_still_refuses_name_what_it_accepts(store_dir):
    run = nbtrack.init(project="rich", dir=store_dir)
    with pytest.raises(TypeError, match=r"cannot log 'obj' \(builtins.object\)"):
        run.log({"obj": object(), "ok": 1})
    run.finish()
    assert nbtrack.Api(store_dir).run(f"rich/{run.id}").rows()[0]["ok"] == 1
