"""Write models/MODEL_CARD.md from the shipped checkpoint and its evaluation JSONs.

Usage::

    python tools/model_card.py --model models/default.pt --onnx models/default.onnx \
        --eval benchmarks/results/default_eval_source.json \
        --eval benchmarks/results/default_eval_target.json --out models/MODEL_CARD.md
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stereo_hand_mesh.model import count_macs, count_parameters, load_checkpoint


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--onnx", type=Path, required=True)
    parser.add_argument("--eval", type=Path, action="append", default=[])
    parser.add_argument("--data-command", action="append", default=[])
    parser.add_argument("--hardware", default="")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    import torch

    from stereo_hand_mesh.model.loading import load_model

    ckpt = load_checkpoint(args.model)
    model, _ = load_model(args.model, torch.device("cpu"))
    size = model.config.input_size
    macs = count_macs(model, torch.zeros(2, 3, size, size))
    prov = ckpt.metadata["provenance"]
    tr = ckpt.training
    wall_min = tr.get("wall_s_this_process", 0.0) / 60.0
    sha = lambda p: hashlib.sha256(p.read_bytes()).hexdigest()[:16]  # noqa: E731
    lines = [
        "# Model card: the synthetic-trained mesh network (legacy mesh-uv path)",
        "",
        f"`models/default.pt` (sha256 `{sha(args.model)}`...) and its ONNX export "
        f"`models/default.onnx` (sha256 `{sha(args.onnx)}`...).",
        "",
        "## What it is",
        "",
        f"- MeshNet ({ckpt.config.to_dict()}): {count_parameters(model) / 1e6:.2f} M "
        f"parameters, {macs / 1e9:.3f} GMAC ({2 * macs / 1e9:.3f} GFLOPs) per 128x128 view.",
        f"- Output: (u, v) of the {ckpt.config.num_vertices} vertices of the package's "
        "procedural template hand (topology hash "
        f"`{ckpt.metadata['topology_hash']}`) in each view's crop, and root-relative depth "
        "(monocular head).",
        f"- Input normalization: {ckpt.metadata['normalization']}.",
        "- Trained **only on synthetic data** rendered by this package (`synth --domain "
        "source`: bright even light, light skin tones, plain or green-screen backgrounds). "
        "It is the *test-directly* model of the experiment; on other scenes, adapt it first "
        "(`stereo-hand-mesh adapt`).",
        "",
        "## How it was made (reproducible)",
        "",
        "```bash",
        *args.data_command,
        prov.get("command", ""),
        'python -c "from stereo_hand_mesh.model.checkpoint import release_checkpoint; '
        "release_checkpoint('runs/pretrain/source6k.pt', 'models/default.pt')\"",
        "stereo-hand-mesh export --model models/default.pt --onnx models/default.onnx "
        "--half-weights",
        "stereo-hand-mesh eval --data runs/data/source_val --model models/default.pt "
        "--json benchmarks/results/default_eval_source.json",
        "stereo-hand-mesh eval --data runs/data/target_test --model models/default.pt "
        "--json benchmarks/results/default_eval_target.json",
        "```",
        "",
        f"- Seed {prov['settings']['seed']}; settings {prov['settings']}.",
        f"- {tr.get('step')} optimizer steps; wall time {wall_min:.1f} min of training (after "
        f"loading the crops) on {args.hardware or prov.get('device')}.",
        "- The released files hold float16 weights (cast to float32 on load) and this "
        "provenance, without optimizer state; the ONNX file stores float16 initializers cast to "
        "float32 in the graph.",
        "",
        "## Metrics",
        "",
        "| data | pairs | mean joint error (mm) | root-relative (mm) | AUC 20-50 "
        "| vertex error (mm) |",
        "|---|---|---|---|---|---|",
    ]
    for path in args.eval:
        r = json.loads(path.read_text())
        m = r["metrics"]
        lines.append(
            f"| `{r['data']}` | {m['count']} | {m['mean_joint_error_mm']:.2f} | "
            f"{m['root_relative_error_mm']:.2f} | {m['auc_20_50']:.3f} | "
            f"{r['vertex_error_mm']:.2f} |"
        )
    lines += [
        "",
        "Crops placed from the splits' hand masks (as the adapt and eval commands do); "
        "joints from the average of both branches' meshes. Commands: "
        "`stereo-hand-mesh eval --data DIR --json OUT` (JSON files in "
        "`benchmarks/results/`).",
        "",
        "## Limits",
        "",
        "- Synthetic training only: expect large errors on real images until adapted.",
        "- Right hands (left hands through mirroring in the pipeline).",
        "- Hands 0.3-0.9 m from an STB-like rig (baseline 120 mm, fx 823 px) in training.",
        "",
    ]
    args.out.write_text("\n".join(lines))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
