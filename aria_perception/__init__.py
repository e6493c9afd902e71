"""aria_perception: real-time monocular depth and object detection for ROS 2 cameras."""

__version__ = "0.1.0"

__all__ = ["__version__"]
