"""``python -m stereo_hand_mesh.cli``: the ``stereo-hand-mesh`` command (torchrun runs it so)."""

import sys

from stereo_hand_mesh.cli import main

if __name__ == "__main__":
    sys.exit(main())
