"""Echo reference: the transport floor the perception node is measured against.

A minimal rclpy node that stands in the perception node's place (same topics, same way of
starting) and answers every frame at once with an empty ``vision_msgs/Detection2DArray`` that
carries the frame's header. Whatever latency the bench measures through it is the cost of moving
frames and results through rclpy and DDS alone.

Run: ``python -m aria_perception.bench.echo --ros-args -r __node:=perception -p
input.transport:=raw``. It accepts (and ignores) the perception node's other parameters, so the
same params file works for both.

Given node names (``name`` or ``/namespace/name``) before ``--ros-args``, it runs one echo node
per name in one process and one executor, as ``perception_container`` runs one perception node
per camera: ``python -m aria_perception.bench.echo /bench_echo/rgb_perception
/bench_echo/slam_left_perception --ros-args -r
rgb_perception:image:=/bench_echo/camera_rgb/image_raw ...``. The multi-stream bench measures
its streams against this.
"""

from __future__ import annotations

import sys
import time

from rclpy.node import Node

from aria_perception.bench.console import EXIT_OK, print_error
from aria_perception.bench.errors import UsageError

STATUS_PREFIX = "aria_perception echo"


def input_qos(name: str, depth: int = 2):
    """The subscription profile for an ``input.qos`` value (``auto`` as the node reads it).

    ``auto`` is best-available reliability where the distribution has it (Iron and later) and
    the sensor-data profile on Humble, like the perception node.
    """
    from rclpy.qos import (
        HistoryPolicy,
        QoSProfile,
        ReliabilityPolicy,
        qos_profile_sensor_data,
    )

    if name == "sensor_data":
        return qos_profile_sensor_data
    if name == "auto":
        best_available = getattr(ReliabilityPolicy, "BEST_AVAILABLE", None)
        if best_available is None:
            return qos_profile_sensor_data
        reliability = best_available
    elif name == "reliable":
        reliability = ReliabilityPolicy.RELIABLE
    elif name == "best_effort":
        reliability = ReliabilityPolicy.BEST_EFFORT
    else:
        raise UsageError(
            f"input.qos must be auto, sensor_data, reliable or best_effort, got {name!r}"
        )
    return QoSProfile(depth=depth, history=HistoryPolicy.KEEP_LAST, reliability=reliability)


class EchoNode(Node):
    """Answers each image with an empty Detection2DArray carrying its header.

    Parameters (ROS): ``input.transport`` (``raw`` subscribes ``image``, ``compressed``
    subscribes ``image/compressed``), ``input.qos`` (as the perception node), and
    ``diagnostics.period_s`` (0 disables its ``/diagnostics`` status). Any other parameter is
    accepted and ignored.
    """

    def __init__(self, node_name: str = "perception", **kwargs) -> None:
        super().__init__(
            node_name,
            allow_undeclared_parameters=True,
            automatically_declare_parameters_from_overrides=True,
            **kwargs,
        )
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.parameter import Parameter
        from sensor_msgs.msg import CompressedImage, Image
        from vision_msgs.msg import Detection2DArray

        def param(name: str, default):
            return self.get_parameter_or(name, Parameter(name, value=default)).value

        transport = str(param("input.transport", "raw"))
        if transport not in ("raw", "compressed"):
            raise UsageError(f"input.transport must be raw or compressed, got {transport!r}")
        period = float(param("diagnostics.period_s", 1.0))
        self._array_t = Detection2DArray
        # Private output name like the perception node's (``<ns>/<node>/detections``).
        self._pub = self.create_publisher(Detection2DArray, "~/detections", 10)
        msg_t, topic = (
            (Image, "image") if transport == "raw" else (CompressedImage, "image/compressed")
        )
        qos = input_qos(str(param("input.qos", "auto")))
        self._sub = self.create_subscription(msg_t, topic, self._on_image, qos)
        self._count = 0
        self._last_count = 0
        self._last_time = time.monotonic()
        if period > 0:
            self._diag_t = DiagnosticArray
            self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
            self.create_timer(period, self._publish_diagnostics)
        self.get_logger().info(
            f"echo reference answering {self._sub.topic_name} on {self._pub.topic_name}"
        )

    def _on_image(self, msg) -> None:
        out = self._array_t()
        out.header = msg.header
        self._pub.publish(out)
        self._count += 1

    def _publish_diagnostics(self) -> None:
        from diagnostic_msgs.msg import DiagnosticStatus, KeyValue

        now = time.monotonic()
        fps = (self._count - self._last_count) / max(now - self._last_time, 1e-9)
        self._last_count, self._last_time = self._count, now
        status = DiagnosticStatus(
            level=DiagnosticStatus.OK,
            name=f"{STATUS_PREFIX}: {self.get_name()}",
            message="echo reference",
            hardware_id="echo",
        )
        values = {
            "input_fps": f"{fps:.2f}",
            "output_fps": f"{fps:.2f}",
            "frames": str(self._count),
            "dropped_frames": "0",
            "rejected_frames": "0",
            "device": "echo",
        }
        status.values = [KeyValue(key=k, value=v) for k, v in values.items()]
        array = self._diag_t()
        array.header.stamp = self.get_clock().now().to_msg()
        array.status = [status]
        self._diag_pub.publish(array)


def _split_name(fqn: str) -> tuple[str, str]:
    """``/ns/name`` -> (``name``, ``/ns``); ``name`` -> (``name``, ``""``)."""
    namespace, _, name = fqn.rstrip("/").rpartition("/")
    return name, namespace if namespace else ("/" if fqn.startswith("/") else "")


def main(args: list[str] | None = None) -> int:
    """Run the echo node(s) until Ctrl-C or SIGTERM (exit status 2 on a bad parameter)."""
    import signal

    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
    from rclpy.utilities import remove_ros_args

    argv = list(sys.argv if args is None else args)
    rclpy.init(args=argv)
    # SIGTERM ends it as cleanly as Ctrl-C does (the bench stops its children with either).
    signal.signal(signal.SIGTERM, lambda *_: rclpy.try_shutdown())
    nodes: list[EchoNode] = []
    node = None
    try:
        names = list(dict.fromkeys(remove_ros_args(argv)[1:]))
        if names:
            executor = SingleThreadedExecutor()
            for fqn in names:
                name, namespace = _split_name(fqn)
                nodes.append(EchoNode(name, namespace=namespace))
                executor.add_node(nodes[-1])
            executor.spin()
        else:
            node = EchoNode()
            rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except UsageError as err:
        return print_error("bench echo", err)
    except Exception:
        if rclpy.ok():
            raise
        # Stopped (SIGTERM) while still starting: creating endpoints on the shut-down context
        # failed, which is the stop that was asked for, not an error.
    finally:
        for each in [*nodes, *([node] if node is not None else [])]:
            each.destroy_node()
        rclpy.try_shutdown()
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
