"""``monitor_gym=True``: videos recorded by gymnasium's ``RecordVideo`` go into the run.

When a recording closes (``RecordVideo.stop_recording``, called at the end of a
recorded episode or step span and by ``env.close()``), the video file it wrote is
stored in the run folder and logged as an ``nbtrack.Video`` under the recorder's
``name_prefix`` (``rl-video`` by default), with the video's name as the caption, so
each recording is one more value of that key.  It joins the run's current row:
with an ``episode_trigger``, gymnasium closes a recording when the next episode
starts (or at ``env.close()``), so episode N's video lands in the row being built
then, and its caption says which episode it shows.
"""

from __future__ import annotations

import os
from typing import Any

from ..errors import UsageError
from ..media import Video
from . import Patcher, installed


def check_available() -> None:
    if not installed("gymnasium"):
        raise UsageError(
            "monitor_gym=True: gymnasium is not installed; pip install 'nbtrack[gym]' "
            "(gymnasium with moviepy, which RecordVideo writes videos with)"
        )


class GymPatcher(Patcher):
    targets = {"gymnasium.wrappers.rendering": "RecordVideo"}
    methods = ("stop_recording",)
    label = "monitor_gym"

    def _wrap(self, name, original):
        # the video's name and folder are cleared by stop_recording itself: note them first
        wrapped = super()._wrap(name, original)

        def stop_recording(recorder, *args, **kwargs):
            recorder._nbtrack_video = (
                getattr(recorder, "_video_name", None),
                getattr(recorder, "video_folder", None),
                len(getattr(recorder, "recorded_frames", ()) or ()),
            )
            return wrapped(recorder, *args, **kwargs)

        stop_recording.__wrapped__ = original  # type: ignore[attr-defined]
        return stop_recording

    def capture(self, name: str, recorder: Any, args: dict[str, Any]) -> None:
        run = self.target()
        video_name, folder, frames = getattr(recorder, "_nbtrack_video", (None, None, 0))
        if run is None or not video_name or not folder or not frames:
            return
        path = os.path.join(folder, f"{video_name}.mp4")
        if not os.path.isfile(path):
            return
        key = getattr(recorder, "name_prefix", None) or "video"
        fps = getattr(recorder, "frames_per_sec", 30) or 30
        if key in run.row_in_progress:  # two recordings in one row: the first must not be overwritten
            run.log({}, commit=True)
        run.log({key: Video(path, caption=video_name, fps=min(fps, 120))}, commit=False)


patcher = GymPatcher()
