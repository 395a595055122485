"""``adaptation_node``: record stereo pairs where the robot works, adapt the network on them
without labels, validate, deploy to ``hand_mesh_node``.

Recording. Synchronized pairs (the four input topics of ``hand_mesh_node``) pass a
:class:`~stereo_hand_mesh.ros.pair_selector.PairSelector` (a hand in view, not a near-duplicate)
and go, serialized as received, into a session of short MCAP bags under ``bag_dir``
(:class:`~stereo_hand_mesh.data.recording.SplitBagRecorder`, one split every
``split_seconds``): a crash loses at most the open split, which the next start-up recovers.
The bags use the default topic names whatever the remapping, so the adapt command reads them
with its defaults.

Adaptation (``~/adapt``), in child processes so the node keeps serving:

1. the closed splits of every session under ``bag_dir`` are divided in time order: the last
   ``validation_fraction`` of them (at least one) are held out;
2. the product's keypoint network (``init_model`` a keypoint network, default the shipped
   one): ``stereo-hand-mesh adapt --out adapted.onnx --validation-data <held-out>`` calibrates
   the user's hand shape, fine-tunes the network on the other splits and scores, without
   labels, the current model, the calibration alone and the adapted network on the held-out
   splits (eq. 10 without its edge term, plus left-right keypoint row agreement); its report
   (``adapted.json``) names the best. A legacy mesh checkpoint (``init_model`` ``*.pt``) runs
   the legacy steps: ``adapt``, ``eval --self-supervised`` of both models, ``export``;
3. only if the best is not the current model: ``model_file_path`` is set on
   ``hand_mesh_node`` and its ``~/reload_model`` called; otherwise the current model stays and
   the status says why.

``~/adapt`` answers when the run has ended, with its decision (the service is a coroutine:
the node keeps recording state, status and other services meanwhile); a second call during
a run is refused at once.

Every run lives in ``model_dir/adapt_<UTC time>/`` (logs, checkpoint, scores, ONNX,
``result.json``). ``~/status`` (std_msgs/String, JSON) reports the state, the recording and
the run's progress once a second and at every change.

Services (std_srvs/Trigger): ``~/start_recording``, ``~/stop_recording``, ``~/adapt``.
Paths come only from parameters; the session and run names are made by the node, so no
request can write outside ``bag_dir`` and ``model_dir``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.node import Node
from rclpy.serialization import serialize_message
from std_msgs.msg import String
from std_srvs.srv import Trigger

from stereo_hand_mesh._paths import executable_path
from stereo_hand_mesh.data.bags import (
    CAMERA_INFO_MSGTYPE,
    DEFAULT_TOPICS,
    IMAGE_MSGTYPE,
    fully_qualified_topic,
)
from stereo_hand_mesh.data.recording import (
    RecorderSettings,
    SplitBagRecorder,
    closed_splits,
    recording_sessions,
    recover_session,
)
from stereo_hand_mesh.errors import (
    ConfigError,
    RecordingStoppedError,
    StereoHandMeshError,
)
from stereo_hand_mesh.ros.image_conversion import image_msg_to_rgb8
from stereo_hand_mesh.ros.node_main import run_node
from stereo_hand_mesh.ros.pair_selector import PairSelector, SelectorSettings
from stereo_hand_mesh.ros.parameters import (
    ADAPTATION_PARAMETERS,
    declare_parameters,
    validate_value,
)
from stereo_hand_mesh.ros.sync import make_stereo_synchronizer

__all__ = ["NODE_NAME", "AdaptationNode", "main", "split_for_validation"]

NODE_NAME = "adaptation_node"


def split_for_validation(splits: Sequence[Path], fraction: float) -> tuple[list[Path], list[Path]]:
    """(training, held-out) splits: the last ``fraction`` of them (at least one) held out.

    Raises:
        ConfigError: fewer than two splits (nothing would be left for one side).
    """
    if len(splits) < 2:
        raise ConfigError(
            f"adapt expected at least 2 closed bag splits under bag_dir (one is held out for "
            f"validation); got {len(splits)}: record longer"
        )
    held = min(max(1, round(len(splits) * fraction)), len(splits) - 1)
    return list(splits[:-held]), list(splits[-held:])


def _link_splits(splits: Sequence[Path], session: Path) -> Path:
    """A session directory of symlinks ``split_NNNN -> <real split>`` (read like a session)."""
    session.mkdir(parents=True)
    for i, split in enumerate(splits):
        (session / f"split_{i:04d}").symlink_to(split.resolve(), target_is_directory=True)
    return session


class AdaptationNode(Node):
    """The adaptation node (see the module docstring)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        self._p = declare_parameters(self, ADAPTATION_PARAMETERS)
        self._log = self.get_logger()
        self._bag_dir = Path(self._p["bag_dir"]).expanduser()
        self._model_dir = Path(self._p["model_dir"]).expanduser()
        for name, path in (("bag_dir", self._bag_dir), ("model_dir", self._model_dir)):
            try:
                path.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise ConfigError(f"{name} expected a writable directory; {path}: {err}") from None
        self._recover()
        self._recorder = SplitBagRecorder(
            RecorderSettings(
                bag_dir=self._bag_dir,
                split_seconds=self._p["split_seconds"],
                min_free_mb=float(self._p["min_free_mb"]),
            )
        )
        self._selector_settings = SelectorSettings(
            min_change=self._p["min_change"], min_interval_s=self._p["min_interval_s"]
        )
        self._selector = PairSelector(self._selector_settings)
        self._rec_lock = threading.Lock()
        self._kept = self._skipped = 0
        self._last_skip = ""
        self._run: dict[str, Any] = {"state": "idle"}
        self._child: subprocess.Popen | None = None
        self._adapt_thread: threading.Thread | None = None

        self._sync = make_stereo_synchronizer(self, self._on_set, self._p)
        services = MutuallyExclusiveCallbackGroup()
        self.create_service(Trigger, "~/start_recording", self._on_start, callback_group=services)
        self.create_service(Trigger, "~/stop_recording", self._on_stop, callback_group=services)
        # Reentrant: the answer waits for the run, and a second call meanwhile is refused.
        self.create_service(
            Trigger, "~/adapt", self._on_adapt, callback_group=ReentrantCallbackGroup()
        )
        self._status_pub = self.create_publisher(String, "~/status", 10)
        self._client_group = MutuallyExclusiveCallbackGroup()
        self.create_timer(1.0, self._publish_status)
        self._log.info(f"recordings in {self._bag_dir}, adapted models in {self._model_dir}")

    # ------------------------------------------------------------------ recording

    def _recover(self) -> None:
        for session in recording_sessions(self._bag_dir):
            try:
                for item in recover_session(session):
                    self._log.warning(f"crash leftover in {session}: {item}")
            except StereoHandMeshError as err:
                self._log.error(f"could not recover {session}: {err}")

    def _on_set(self, left: Any, left_info: Any, right: Any, right_info: Any) -> None:
        with self._rec_lock:
            if not self._recorder.recording:
                return
            stamp = int(left.header.stamp.sec) * 10**9 + int(left.header.stamp.nanosec)
            try:
                keep, reason = self._selector.consider(
                    image_msg_to_rgb8(left), image_msg_to_rgb8(right), stamp
                )
            except StereoHandMeshError as err:
                keep, reason = False, f"bad input: {err}"
            if not keep:
                self._skipped += 1
                self._last_skip = reason
                return
            t = DEFAULT_TOPICS
            messages = [
                (fully_qualified_topic(t.left_image), IMAGE_MSGTYPE, serialize_message(left)),
                (
                    fully_qualified_topic(t.left_info),
                    CAMERA_INFO_MSGTYPE,
                    serialize_message(left_info),
                ),
                (fully_qualified_topic(t.right_image), IMAGE_MSGTYPE, serialize_message(right)),
                (
                    fully_qualified_topic(t.right_info),
                    CAMERA_INFO_MSGTYPE,
                    serialize_message(right_info),
                ),
            ]
            try:
                if self._recorder.write_pair(stamp, messages):
                    self._kept += 1
            except RecordingStoppedError as err:
                self._log.error(str(err))  # says "recording stopped: <why>"
                self._publish_status()
            except StereoHandMeshError as err:  # a pair the recorder refuses: skip it, go on
                self._skipped += 1
                self._last_skip = f"not recorded: {err}"
                self._log.error(self._last_skip)

    def _on_start(self, _req: Any, res: Any) -> Any:
        with self._rec_lock:
            if self._recorder.recording:
                res.success, res.message = (
                    False,
                    f"already recording to {self._recorder.session_dir}",
                )
                return res
            try:
                session = self._recorder.start()
            except StereoHandMeshError as err:
                res.success, res.message = False, f"could not start recording: {err}"
                self._log.error(res.message)
                return res
            self._selector = PairSelector(self._selector_settings)
            self._kept = self._skipped = 0
        res.success, res.message = True, f"recording to {session}"
        self._log.info(res.message)
        self._publish_status()
        return res

    def _on_stop(self, _req: Any, res: Any) -> Any:
        with self._rec_lock:
            if not self._recorder.recording:
                res.success, res.message = False, f"not recording ({self._recorder.state})"
                return res
            summary = self._recorder.stop()
        res.success = True
        res.message = (
            f"stopped: {summary.pairs_written} pairs in {summary.splits_closed} splits in "
            f"{summary.session_dir}"
        )
        self._log.info(res.message)
        self._publish_status()
        return res

    # ------------------------------------------------------------------ adaptation

    async def _on_adapt(self, _req: Any, res: Any) -> Any:
        from rclpy.task import Future

        if self._adapt_thread is not None and self._adapt_thread.is_alive():
            res.success, res.message = False, f"already adapting: {self._run.get('state')}"
            return res
        if self._recorder.recording:
            res.success, res.message = False, "stop recording first (~/stop_recording)"
            return res
        try:  # parameters marked "adapt" apply from this run on
            for spec in ADAPTATION_PARAMETERS:
                if spec.applies == "adapt":
                    self._p[spec.name] = validate_value(spec, self.get_parameter(spec.name).value)
        except ConfigError as err:
            res.success, res.message = False, str(err)
            return res
        splits = [
            s for session in recording_sessions(self._bag_dir) for s in closed_splits(session)
        ]
        try:
            train, held = split_for_validation(splits, self._p["validation_fraction"])
        except ConfigError as err:
            res.success, res.message = False, str(err)
            return res
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
        run_dir = self._model_dir / f"adapt_{stamp}"
        _link_splits(train, run_dir / "train")
        _link_splits(held, run_dir / "validation")
        self._run = {
            "state": "adapting",
            "run_dir": str(run_dir),
            "train_splits": len(train),
            "validation_splits": len(held),
            "started": stamp,
        }
        done: Future = Future()
        self._adapt_thread = threading.Thread(
            target=self._adapt_run, args=(run_dir, done), name="adapt", daemon=True
        )
        self._adapt_thread.start()
        self._log.info(
            f"adapting on {len(train)} splits, validating on {len(held)}, in {run_dir} "
            f"(progress on {self.resolve_topic_name('~/status')})"
        )
        self._publish_status()
        result = await done
        state = str(result.get("state", "failed: no result"))
        res.success = not state.startswith("failed")
        res.message = state if not result.get("decision") else f"{state}: {result['decision']}"
        return res

    def _child_run(self, step: str, args: list[str], run_dir: Path) -> None:
        """Run ``stereo-hand-mesh <args>`` as a child process; raise on failure."""
        self._run["state"] = step
        self._publish_status()
        cmd = [str(executable_path("stereo-hand-mesh")), *args]
        with open(run_dir / f"{step}.log", "w") as log:
            log.write(" ".join(cmd) + "\n")
            log.flush()
            self._child = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
            code = self._child.wait()
            self._child = None
        if code != 0:
            log_path = run_dir / f"{step}.log"
            errors = [
                line.strip()
                for line in log_path.read_text(errors="replace").splitlines()
                if "error:" in line
            ]
            why = f" ({errors[-1]})" if errors else ""
            raise RuntimeError(f"{step} exited with {code}{why}; see {log_path}")

    def _adapt_run(self, run_dir: Path, done: Any = None) -> None:
        p = self._p
        result: dict[str, Any] = {"run_dir": str(run_dir)}
        try:
            if str(p["init_model"]).endswith(".pt"):
                self._legacy_steps(run_dir, result)
            else:
                self._keypoint_steps(run_dir, result)
        except Exception as err:  # a failed step ends the run; the serving model stays
            result["state"] = f"failed: {err}"
        (run_dir / "result.json").write_text(json.dumps(result, indent=2) + "\n")
        self._run = {**self._run, **result}
        line = f"adaptation run {run_dir.name}: {result['state']} {result.get('decision', '')}"
        # One call site per severity (rclpy refuses a call site whose severity changes).
        if result["state"].startswith("failed"):
            self._log.error(line)
        else:
            self._log.info(line)
        self._publish_status()
        if done is not None:
            done.set_result(result)

    def _common_args(self) -> list[str]:
        p = self._p
        common = ["--quiet"]
        if p["adapt_threads"]:
            common += ["--threads", str(p["adapt_threads"])]
        if p["adapt_limit"]:
            common += ["--limit", str(p["adapt_limit"])]
        return common

    def _keypoint_steps(self, run_dir: Path, result: dict[str, Any]) -> None:
        """Adapt, calibrate and validate in one child; deploy what its report chose."""
        p = self._p
        onnx = run_dir / "adapted.onnx"
        init = ["--init", p["init_model"]] if p["init_model"] else []
        if p["device"] not in ("", "cpu"):
            raise ConfigError(
                f"device expected cpu for the keypoint network's adaptation (it runs on the "
                f"CPU); got {p['device']!r}"
            )
        self._child_run(
            "adapt",
            ["adapt", "--data", str(run_dir / "train"), "--validation-data",
             str(run_dir / "validation"), "--out", str(onnx), "--epochs", str(p["epochs"]),
             *init, *self._common_args()],
            run_dir,
        )  # fmt: skip
        report = json.loads(onnx.with_suffix(".json").read_text())
        scores = {k: v and v["score"] for k, v in report["validation"].items()}
        result |= {
            "decision": report["decision"],
            "chosen": report["chosen"],
            "calibration_used": report["calibration_used"],
            "network_adapted": report["network_adapted"],
            "validation_initial": scores["current"],
            "validation_calibrated": scores["calibrated"],
            "validation_adapted": scores["adapted"],
            "pairs_adapted": report["pairs_adapted"],
            "pairs_validation": report["pairs_validation"],
            "diverged": report["training"]["diverged"],
        }
        if not report["better"]:
            result["state"] = "kept the current model"
            return
        self._run["state"] = "deploying"
        result["deployed"] = self._deploy(onnx)
        result["state"] = "deployed" if result["deployed"] == "ok" else "adapted, not deployed"

    def _legacy_steps(self, run_dir: Path, result: dict[str, Any]) -> None:
        """The legacy mesh network: adapt, validate both models, export, deploy."""
        p = self._p
        ckpt, onnx = run_dir / "adapted.pt", run_dir / "adapted.onnx"
        init = [p["init_model"]]
        common = ["--device", p["device"], *self._common_args()]
        self._child_run(
            "adapt",
            ["adapt", "--data", str(run_dir / "train"), "--out", str(ckpt),
             "--epochs", str(p["epochs"]), "--init", *init, *common],
            run_dir,
        )  # fmt: skip
        for name, model in (("initial", init), ("adapted", [str(ckpt)])):
            self._child_run(
                f"validate_{name}",
                ["eval", "--self-supervised", "--data", str(run_dir / "validation"),
                 "--model", *model, "--json", str(run_dir / f"validation_{name}.json"),
                 *common],
                run_dir,
            )  # fmt: skip
        before = json.loads((run_dir / "validation_initial.json").read_text())["score"]
        after = json.loads((run_dir / "validation_adapted.json").read_text())["score"]
        result |= {"validation_initial": before, "validation_adapted": after}
        if not after < before:
            result["state"] = "kept the current model: the adapted one did not improve"
            return
        self._child_run("export", ["export", "--model", str(ckpt), "--onnx", str(onnx)], run_dir)
        self._run["state"] = "deploying"
        result["deployed"] = self._deploy(onnx)
        result["state"] = "deployed" if result["deployed"] == "ok" else "adapted, not deployed"

    def _deploy(self, onnx: Path) -> str:
        """Set model_file_path on hand_mesh_node and reload it; "ok" or what went wrong."""
        from rcl_interfaces.srv import SetParameters
        from rclpy.parameter import Parameter

        target = self._p["hand_mesh_node"].rstrip("/")
        set_client = self.create_client(
            SetParameters, f"{target}/set_parameters", callback_group=self._client_group
        )
        reload_client = self.create_client(
            Trigger, f"{target}/reload_model", callback_group=self._client_group
        )
        try:
            if not set_client.wait_for_service(timeout_sec=10.0):
                return f"{target} is not running (no {target}/set_parameters)"
            request = SetParameters.Request(
                parameters=[Parameter("model_file_path", value=str(onnx)).to_parameter_msg()]
            )
            results = self._call(set_client, request)
            if results is None or not all(r.successful for r in results.results):
                return f"{target} refused model_file_path={onnx}"
            if not reload_client.wait_for_service(timeout_sec=10.0):
                return f"{target} has no reload_model service"
            reply = self._call(reload_client, Trigger.Request())
            if reply is None:
                return f"{target}/reload_model did not answer"
            return "ok" if reply.success else f"reload refused: {reply.message}"
        finally:
            self.destroy_client(set_client)
            self.destroy_client(reload_client)

    @staticmethod
    def _call(client: Any, request: Any, timeout_s: float = 60.0) -> Any:
        future = client.call_async(request)
        end = time.monotonic() + timeout_s
        while not future.done() and time.monotonic() < end:
            time.sleep(0.02)
        return future.result() if future.done() else None

    # ------------------------------------------------------------------ status

    def _publish_status(self) -> None:
        summary = self._recorder.summary()
        status = {
            "recording": summary.as_dict(),
            "pairs_kept": self._kept,
            "pairs_skipped": self._skipped,
            "last_skip_reason": self._last_skip,
            "adaptation": self._run,
        }
        self._status_pub.publish(String(data=json.dumps(status, default=str)))

    def shutdown(self) -> None:
        """Close the open split and stop a running child."""
        with self._rec_lock:
            if self._recorder.recording:
                self._recorder.stop()
        child = self._child
        if child is not None and child.poll() is None:
            child.terminate()


def main(args: Sequence[str] | None = None) -> int:
    """Console script ``adaptation_node``."""
    return run_node(AdaptationNode, NODE_NAME, args)


if __name__ == "__main__":
    sys.exit(main())
