"""ament_python package definition (colcon build in a ROS 2 workspace, or pip install -e .)."""

import os
from glob import glob

from setuptools import find_packages, setup

package_name = "stereo_hand_mesh"

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(include=[package_name, f"{package_name}.*"]),
    package_data={package_name: ["hand/*.npz"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{package_name}"]),
        (f"share/{package_name}", ["package.xml"]),
        (f"share/{package_name}/launch", glob("launch/*.launch.py")),
        (
            f"share/{package_name}/config",
            glob("config/*.yaml") + glob("config/*.rviz") + glob("config/*.xml"),
        ),
        (f"share/{package_name}/config/presets", glob("config/presets/*.yaml")),
        # Files only: a folder in data_files stops the install.
        (f"share/{package_name}/models", [p for p in glob("models/*") if os.path.isfile(p)]),
        # Licence, notice and provenance of the imported MediaPipe weights.
        (f"share/{package_name}/models/mediapipe", glob("models/mediapipe/*")),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="stereo_hand_mesh maintainers",
    maintainer_email="maintainers@stereo-hand-mesh.invalid",
    description="Absolute metric 3D hand meshes from a stereo camera, for ROS 2.",
    license="Apache-2.0",
    tests_require=["pytest"],
    entry_points={
        "console_scripts": [
            "stereo-hand-mesh = stereo_hand_mesh.cli:main",
            "hand_mesh_node = stereo_hand_mesh.ros.hand_mesh_node:main",
            "adaptation_node = stereo_hand_mesh.ros.adaptation_node:main",
            "stereo_camera_sim = stereo_hand_mesh.ros.stereo_camera_sim:main",
        ],
    },
)
