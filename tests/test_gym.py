"""monitor_gym: a real gymnasium CartPole recorded by RecordVideo (moviepy writing MP4s);
the videos read back through nbtrack.Api."""

from __future__ import annotations

import json
import sys

import pytest
from conftest import run_python

import nbtrack

pytest.importorskip("gymnasium")
pytest.importorskip("moviepy")

EPISODES = """
import json, sys, nbtrack
run = nbtrack.init(project="gym", dir={store!r}, monitor_gym=True)
loaded_early = "gymnasium.wrappers.rendering" in sys.modules
import gymnasium as gym
env = gym.make("CartPole-v1", render_mode="rgb_array")
env = gym.wrappers.RecordVideo(env, video_folder={videos!r}, episode_trigger=lambda e: e in (0, 2),
                               name_prefix="cartpole", disable_logger=True)
for episode in range(3):
    env.reset(seed=episode)
    done = False
    steps = 0
    while not done:
        _, reward, terminated, truncated, _ = env.step(env.action_space.sample())
        done = terminated or truncated
        steps += 1
    run.log({{"episode_length": steps}})
env.close()
run.finish()
print(json.dumps({{"id": run.id, "dir": run.dir, "loaded_early": loaded_early}}))
"""


def test_recorded_videos_are_saved_and_logged(tmp_path):
    store, videos = tmp_path / "store", tmp_path / "videos"
    out = run_python(
        EPISODES.format(store=str(store), videos=str(videos)), timeout=300, env={"SDL_VIDEODRIVER": "dummy"}
    )
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["loaded_early"] is False  # asking for monitor_gym imported nothing of gymnasium
    written = sorted(videos.glob("*.mp4"))
    assert [p.name for p in written] == ["cartpole-episode-0.mp4", "cartpole-episode-2.mp4"]
    record = nbtrack.Api(store).run(f"gym/{got['id']}")
    rows = record.rows(keys=["cartpole"])
    assert [r["cartpole"]["caption"] for r in rows] == ["cartpole-episode-0", "cartpole-episode-2"]
    for row, original in zip(rows, written):
        video = row["cartpole"]
        assert video.kind == "video" and video["format"] == "mp4"
        assert video.read_bytes() == original.read_bytes() and video.file.is_relative_to(got["dir"])
        assert video.read_bytes()[4:8] == b"ftyp"  # a real MP4 container
    # gymnasium closes an episode's recording when the next episode starts (or at
    # env.close()): the video joins the row being built then
    assert [r["_step"] for r in rows] == [1, 3]
    assert [r["_step"] for r in record.rows(keys=["episode_length"])] == [0, 1, 2]


def test_without_gymnasium_init_names_the_package(store_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "gymnasium", None)
    with pytest.raises(nbtrack.UsageError, match=r"monitor_gym=True: gymnasium is not installed; pip install"):
        nbtrack.init(project="gym", dir=str(store_dir), monitor_gym=True)
    assert nbtrack.Api(str(store_dir)).runs("gym") == []
