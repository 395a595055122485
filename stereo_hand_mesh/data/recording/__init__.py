"""Split recordings of stereo pairs (rosbag2, MCAP): writing, crash recovery, reading.

- :mod:`.layout`: the on-disk layout of a session and the read side that
  :mod:`stereo_hand_mesh.data.sources` uses (:func:`closed_splits`, :func:`recording_sessions`).
- :mod:`.writer`: :class:`SplitBagRecorder`, its session lock and its fsync.
- :mod:`.recovery`: :func:`recover_session`, for the ``.partial`` splits a crash left behind.

Which pairs are worth recording is decided above the data layer, beside the adaptation node
(:mod:`stereo_hand_mesh.ros.pair_selector`), since it uses the pipeline's hand locator.
Nothing here imports rclpy, torch or the pipeline; rosbags and mcap are imported inside the
functions that need them.
"""

from stereo_hand_mesh.data.recording.layout import (
    closed_splits,
    is_recording_session,
    partial_splits,
    recording_sessions,
)
from stereo_hand_mesh.data.recording.recovery import RecoveredSplit, recover_session
from stereo_hand_mesh.data.recording.writer import (
    RecorderSettings,
    RecordingSummary,
    SplitBagRecorder,
    pair_messages_cdr,
)

__all__ = [
    "RecorderSettings",
    "RecordingSummary",
    "RecoveredSplit",
    "SplitBagRecorder",
    "closed_splits",
    "is_recording_session",
    "pair_messages_cdr",
    "partial_splits",
    "recording_sessions",
    "recover_session",
]
