#!/usr/bin/env python3
"""Write config/<node>.yaml from the nodes' parameter tables (one source of truth).

Every declared parameter appears with its default and a comment (its description, range and
choices). test/test_ros_config.py checks that the committed files equal what this writes.

    .venv/bin/python tools/write_configs.py          # rewrite the files
    .venv/bin/python tools/write_configs.py --check  # exit 1 when a file is out of date
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from stereo_hand_mesh.ros.parameters import config_yaml_text, node_parameter_tables

CONFIG = Path(__file__).resolve().parents[1] / "config"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check, write nothing")
    args = parser.parse_args()
    stale = []
    for node, (filename, specs) in node_parameter_tables().items():
        path = CONFIG / filename
        text = config_yaml_text(node, specs)
        if args.check:
            if not path.is_file() or path.read_text() != text:
                stale.append(str(path))
        else:
            path.write_text(text)
            print(f"wrote {path}")
    if stale:
        print("out of date (run tools/write_configs.py): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
