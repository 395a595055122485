"""stereo_hand_mesh: absolute metric 3D hand meshes from a stereo camera, for ROS 2.

Library layers (``hand``, ``geometry``, ``render``, ``losses``, ``model``, ``data``,
``train``, ``runtime``) know nothing of ROS; ``pipeline`` is the per-frame path in numpy;
``ros`` holds thin rclpy nodes over it; ``cli`` holds the ``stereo-hand-mesh`` command and
the benchmarks' entry points. No layer imports one above it (``test/test_architecture.py``).
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
