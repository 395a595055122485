#!/usr/bin/env python3
"""Write config/<node>.yaml, config/presets/<preset>.yaml and the README's parameter tables
from the nodes' parameter tables and the driver presets (one source of truth).

Every declared parameter appears with its default and a comment (its description, range and
choices). test/test_ros_hand_mesh_node.py checks that the committed files equal what this writes.

    .venv/bin/python tools/write_configs.py          # rewrite the files
    .venv/bin/python tools/write_configs.py --check  # exit 1 when a file is out of date
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from stereo_hand_mesh.ros.driver_presets import PRESETS, preset_config_text
from stereo_hand_mesh.ros.parameters import (
    config_yaml_text,
    node_parameter_tables,
    parameters_markdown,
)

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "config"
README = ROOT / "README.md"
BEGIN, END = "<!-- parameters:begin (tools/write_configs.py) -->", "<!-- parameters:end -->"


def readme_text(current: str) -> str:
    """The README with its parameter block replaced by the generated tables."""
    head, rest = current.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{parameters_markdown()}{END}{tail}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check, write nothing")
    args = parser.parse_args()
    stale = []
    outputs = [
        (CONFIG / filename, config_yaml_text(node, specs))
        for node, (filename, specs) in node_parameter_tables().items()
    ]
    outputs += [
        (CONFIG / "presets" / f"{name}.yaml", preset_config_text(preset))
        for name, preset in PRESETS.items()
    ]
    outputs.append((README, readme_text(README.read_text())))
    for path, text in outputs:
        if args.check:
            if not path.is_file() or path.read_text() != text:
                stale.append(str(path))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {path}")
    if stale:
        print("out of date (run tools/write_configs.py): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
