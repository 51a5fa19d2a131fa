import re

import pytest

import nbtrack
from nbtrack.naming import check_project, check_run_id, check_tags, new_run_id, new_run_name


@pytest.mark.parametrize(
    "bad, why",
    [
        ("", "is empty"),
        (" abc", "whitespace"),
        ("abc\t", "whitespace"),
        (".", "'.'"),
        ("..", "'..'"),
        ("x" * 129, "129 characters"),
        *[(f"a{c}b", repr(c)) for c in "/\\#?%:;,'"],
    ],
)
def test_invalid_run_ids_are_usage_errors(bad, why, store_dir):
    with pytest.raises(nbtrack.UsageError) as err:
        nbtrack.init(project="p", id=bad, dir=store_dir)
    message = str(err.value)
    assert message.startswith("id=") and why in message
    assert "a run id is 1-128 characters" in message  # says what is accepted
    assert not (store_dir / "nbtrack").exists()  # rejected before anything was written


def test_non_string_id_is_rejected():
    with pytest.raises(nbtrack.UsageError, match="id: expected a string"):
        check_run_id(123)


@pytest.mark.parametrize("good", ["a", "run-1", "x" * 128, "Mixed.Case_id", "a.b"])
def test_valid_run_ids(good):
    assert check_run_id(good) == good


def test_default_id_and_name_format(store_dir):
    ids = {new_run_id() for _ in range(200)}
    assert len(ids) == 200
    assert all(re.fullmatch(r"[a-z0-9]{8}", i) for i in ids)
    assert re.fullmatch(r"[a-z]+-[a-z]+-7", new_run_name(7))
    run = nbtrack.init(project="p", dir=store_dir)
    assert re.fullmatch(r"[a-z0-9]{8}", run.id)
    assert re.fullmatch(r"[a-z]+-[a-z]+-1", run.name)
    run.finish()
    second = nbtrack.init(project="p", dir=store_dir)
    assert second.name.endswith("-2")  # the number counts the project's runs


@pytest.mark.parametrize("bad", ["x" * 129, "a/b", "a\\b", "a#b", "a?b", "a%b", "a:b", "", "   "])
def test_invalid_projects(bad, store_dir):
    with pytest.raises(nbtrack.UsageError) as err:
        nbtrack.init(project=bad, dir=store_dir)
    assert str(err.value).startswith("project=") and "project name is 1-128 characters" in str(err.value)


def test_project_accepts_128_characters():
    assert check_project("p" * 128) == "p" * 128


@pytest.mark.parametrize(
    "bad, match",
    [
        ("single", "expected a list or tuple of strings, got the string"),
        ([""], "1-64 characters"),
        (["x" * 65], "1-64 characters"),
        ([3], "each tag must be a string"),
        (5, "expected a list or tuple of strings"),
    ],
)
def test_invalid_tags(bad, match, store_dir):
    with pytest.raises(nbtrack.UsageError, match=match):
        nbtrack.init(project="p", tags=bad, dir=store_dir)


def test_tags_are_a_tuple_and_can_be_extended(store_dir):
    assert check_tags(["a", "b", "a"]) == ("a", "b")
    run = nbtrack.init(project="p", tags=["baseline"], dir=store_dir)
    assert run.tags == ("baseline",)
    run.tags += ("x",)
    assert run.tags == ("baseline", "x")
    with pytest.raises(nbtrack.UsageError):
        run.tags += ("y" * 65,)
    run.finish()
    assert nbtrack.Api(store_dir).run(f"p/{run.id}").tags == ("baseline", "x")
