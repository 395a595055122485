"""Data formats and readers: camera_info YAML, synthetic stereo splits, FreiHAND, STB,
rosbag2 stereo bags and split recordings (:mod:`.recording`) and real stereo folders, all
yielding the same sample types.

The modules here import rosbags, mcap, OpenCV and scipy only inside the functions that need them,
and never torch or rclpy, so importing this package adds no heavy dependency of its own. The
on-disk formats are described in ``docs/data_format.md``.
"""

from stereo_hand_mesh.data.bags import (
    DEFAULT_GT_TOPIC,
    DEFAULT_TOPICS,
    IMAGE_ENCODINGS,
    BagInfo,
    StereoTopics,
    TopicSummary,
    bag_info,
    is_rosbag2,
    read_stereo_bag,
    rgb_from_image_buffer,
    write_stereo_bag,
)
from stereo_hand_mesh.data.camera_info_yaml import (
    DEFAULT_LEFT_FRAME_ID,
    DEFAULT_RIGHT_FRAME_ID,
    STB_BUMBLEBEE2,
    StereoRigSpec,
    camera_info_from_yaml_text,
    camera_info_to_yaml_text,
    read_camera_info_yaml,
    rectified_stereo_camera_infos,
    write_camera_info_yaml,
)
from stereo_hand_mesh.data.freihand import FREIHAND_SPLITS, FreiHANDReader
from stereo_hand_mesh.data.image_io import (
    read_image_rgb,
    read_mask,
    write_image_png,
    write_mask_png,
)
from stereo_hand_mesh.data.realdata import (
    REAL_LABELS_FILE,
    RealStereoFolder,
    RealStereoLabels,
    is_real_stereo_folder,
    read_real_stereo_labels,
    write_real_stereo_folder,
)
from stereo_hand_mesh.data.recording import (
    RecorderSettings,
    RecordingSummary,
    RecoveredSplit,
    SplitBagRecorder,
    closed_splits,
    is_recording_session,
    pair_messages_cdr,
    partial_splits,
    recording_sessions,
    recover_session,
)
from stereo_hand_mesh.data.sample import GROUND_TRUTH_FIELDS, MonoSample, StereoSample
from stereo_hand_mesh.data.sources import iter_stereo_samples, stereo_source_kind
from stereo_hand_mesh.data.stb import (
    STB_SEQUENCES,
    STB_TEST_SEQUENCES,
    STB_TRAIN_SEQUENCES,
    STBReader,
    read_stb_labels,
)
from stereo_hand_mesh.data.stereo_set import (
    STEREO_SET_FORMAT,
    STEREO_SET_FORMAT_VERSION,
    StereoSetReader,
    StereoSetWriter,
    is_stereo_set,
)

__all__ = [
    "DEFAULT_GT_TOPIC",
    "DEFAULT_LEFT_FRAME_ID",
    "DEFAULT_RIGHT_FRAME_ID",
    "DEFAULT_TOPICS",
    "FREIHAND_SPLITS",
    "GROUND_TRUTH_FIELDS",
    "IMAGE_ENCODINGS",
    "REAL_LABELS_FILE",
    "STB_BUMBLEBEE2",
    "STB_SEQUENCES",
    "STB_TEST_SEQUENCES",
    "STB_TRAIN_SEQUENCES",
    "STEREO_SET_FORMAT",
    "STEREO_SET_FORMAT_VERSION",
    "BagInfo",
    "FreiHANDReader",
    "MonoSample",
    "RealStereoFolder",
    "RealStereoLabels",
    "RecorderSettings",
    "RecordingSummary",
    "RecoveredSplit",
    "STBReader",
    "SplitBagRecorder",
    "StereoRigSpec",
    "StereoSample",
    "StereoSetReader",
    "StereoSetWriter",
    "StereoTopics",
    "TopicSummary",
    "bag_info",
    "camera_info_from_yaml_text",
    "camera_info_to_yaml_text",
    "closed_splits",
    "is_real_stereo_folder",
    "is_recording_session",
    "is_rosbag2",
    "is_stereo_set",
    "iter_stereo_samples",
    "pair_messages_cdr",
    "partial_splits",
    "read_camera_info_yaml",
    "read_image_rgb",
    "read_mask",
    "read_real_stereo_labels",
    "read_stb_labels",
    "read_stereo_bag",
    "recording_sessions",
    "recover_session",
    "rectified_stereo_camera_infos",
    "rgb_from_image_buffer",
    "stereo_source_kind",
    "write_camera_info_yaml",
    "write_image_png",
    "write_mask_png",
    "write_real_stereo_folder",
    "write_stereo_bag",
]
