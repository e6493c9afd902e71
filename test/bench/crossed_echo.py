"""A broken multi-stream target for the bench's tests: it answers each stream on the next one's.

Started like the echo reference of several streams (node names, then ``--ros-args`` with each
node's ``image`` remap): node ``i`` answers every frame it gets, header kept, on node
``i + 1``'s ``detections``, as a shared worker that handed results to the wrong node would.
"""

from __future__ import annotations

import sys

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.utilities import remove_ros_args
from sensor_msgs.msg import Image
from vision_msgs.msg import Detection2DArray


def main() -> int:
    rclpy.init(args=sys.argv)
    nodes, publishers = [], []
    for fqn in remove_ros_args(sys.argv)[1:]:
        namespace, _, name = fqn.rpartition("/")
        node = rclpy.create_node(name, namespace=namespace or "/")
        nodes.append(node)
        publishers.append(node.create_publisher(Detection2DArray, "~/detections", 10))
    for i, node in enumerate(nodes):
        wrong = publishers[(i + 1) % len(publishers)]

        def answer(msg: Image, wrong=wrong) -> None:
            out = Detection2DArray()
            out.header = msg.header
            wrong.publish(out)

        node.create_subscription(Image, "image", answer, 10)
    executor = SingleThreadedExecutor()
    for node in nodes:
        executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        for node in nodes:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
