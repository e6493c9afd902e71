"""Where a target's topics are: candidates on the ROS graph, then the resolved names."""

from __future__ import annotations

from dataclasses import dataclass


def join_topic(*parts: str) -> str:
    """Join topic name parts into one absolute name (``join_topic("/ns/", "a")`` is ``/ns/a``)."""
    return "/" + "/".join(p.strip("/") for p in parts if p.strip("/"))


def camera_info_topic(image_topic: str) -> str:
    """The CameraInfo topic beside an image topic, as ROS cameras name them.

    ``/camera_rgb/image_raw`` (or ``.../image_raw/compressed``) goes with
    ``/camera_rgb/camera_info``, and the node's input ``/ns/image`` with ``/ns/camera_info``.
    """
    base = image_topic.removesuffix("/compressed").rstrip("/")
    return join_topic(base.rsplit("/", 1)[0], "camera_info")


@dataclass(frozen=True)
class Topics:
    """Fully resolved topics of one target.

    Attributes:
        image: Input topic the frames are published on.
        detections: The target's Detection2DArray output.
        depth: ``depth/raw`` (collected and checked when set).
        diagnostics: Where the target publishes its DiagnosticArray.
        overlay: ``detections/overlay`` (captured for a few frames when set).
        depth_normalized: ``depth/normalized`` (captured for a few frames when set).
        camera_info: Where the frames' CameraInfo goes, beside ``image`` (when the frames have
            one).
    """

    image: str
    detections: str
    depth: str | None = None
    diagnostics: str = "/diagnostics"
    overlay: str | None = None
    depth_normalized: str | None = None
    camera_info: str | None = None


@dataclass(frozen=True)
class TopicPlan:
    """Where a target's topics may be, found on the ROS graph when it is up.

    A node's relative names resolve under its namespace (``/ns/image``) and its private names
    under its own name (``/ns/node/detections``); the perception node takes its input relative
    and publishes its outputs privately, but the bench accepts either for each, so it also
    measures nodes that do otherwise.

    Attributes:
        inputs: Candidate input topics, in order of preference.
        outputs: Candidate prefixes of the outputs (``<prefix>/detections``, ...).
        depth: Collect ``depth/raw``.
        images: Capture ``detections/overlay`` and ``depth/normalized``.
        diagnostics: Diagnostics topic.
    """

    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    depth: bool = False
    images: bool = False
    diagnostics: str = "/diagnostics"

    @classmethod
    def for_node(
        cls,
        namespace: str,
        node_name: str,
        compressed: bool,
        depth: bool = False,
        images: bool = False,
    ) -> TopicPlan:
        """The candidates of a node called ``node_name`` in ``namespace``."""
        leaf = "image/compressed" if compressed else "image"
        relative, private = join_topic(namespace), join_topic(namespace, node_name)
        return cls(
            inputs=(join_topic(relative, leaf), join_topic(private, leaf)),
            outputs=(private, relative),
            depth=depth,
            images=images,
        )

    @classmethod
    def exact(
        cls, image: str, output_prefix: str, depth: bool = False, images: bool = False
    ) -> TopicPlan:
        """Given topics (``--image-topic``, ``--output-prefix``), no search."""
        return cls(
            inputs=(image,), outputs=(join_topic(output_prefix),), depth=depth, images=images
        )

    def resolve(self, image: str, prefix: str) -> Topics:
        """The topics for the chosen input and output prefix."""
        return Topics(
            image=image,
            detections=join_topic(prefix, "detections"),
            depth=join_topic(prefix, "depth/raw") if self.depth else None,
            diagnostics=self.diagnostics,
            overlay=join_topic(prefix, "detections/overlay") if self.images else None,
            depth_normalized=join_topic(prefix, "depth/normalized") if self.images else None,
        )
