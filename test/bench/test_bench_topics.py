"""Where the bench looks for a target's topics."""

from __future__ import annotations

from aria_perception.bench.topics import TopicPlan, join_topic


def test_topic_plan_candidates() -> None:
    plan = TopicPlan.for_node("/cam", "perception", compressed=True, depth=True)
    assert plan.inputs == ("/cam/image/compressed", "/cam/perception/image/compressed")
    assert plan.outputs == ("/cam/perception", "/cam")
    t = plan.resolve("/cam/image/compressed", "/cam/perception")
    assert (t.detections, t.depth, t.overlay) == (
        "/cam/perception/detections",
        "/cam/perception/depth/raw",
        None,
    )
    root = TopicPlan.for_node("/", "perception", compressed=False, images=True)
    assert root.inputs == ("/image", "/perception/image")
    t = root.resolve("/image", "/")
    assert (t.detections, t.depth, t.overlay, t.depth_normalized) == (
        "/detections",
        None,
        "/detections/overlay",
        "/depth/normalized",
    )
    exact = TopicPlan.exact("/x/rgb", "out/")
    assert exact.inputs == ("/x/rgb",) and exact.outputs == ("/out",)
    assert join_topic("/ns/", "", "a/") == "/ns/a"
