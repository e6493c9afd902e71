from glob import glob

from setuptools import find_packages, setup

package_name = "aria_perception"

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(include=[package_name, f"{package_name}.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{package_name}"]),
        # Node plugins for perception_container (ros2 component load; see README "Composition").
        (
            "share/ament_index/resource_index/rclpy_components",
            [f"resource/rclpy_components/{package_name}"],
        ),
        (f"share/{package_name}", ["package.xml"]),
        (f"share/{package_name}/launch", glob("launch/*.py")),
        (f"share/{package_name}/config", glob("config/*")),
    ],
    install_requires=["setuptools", "numpy"],
    zip_safe=True,
    maintainer="aria_perception developers",
    maintainer_email="aria-perception@example.com",
    description=(
        "Real-time monocular relative depth (MiDaS v2.1 small) and object detection "
        "(Ultralytics YOLO) for ROS 2 cameras, first of all Project Aria's RGB camera."
    ),
    license="Apache-2.0",
    tests_require=["pytest"],
    entry_points={
        "console_scripts": [
            "perception_node = aria_perception.ros.node:main",
            "perception_container = aria_perception.ros.container:main",
            "bench = aria_perception.bench.cli:main",
            "engine_bench = aria_perception.bench.engine_bench:main",
            "models = aria_perception.engine.download:main",
        ],
    },
)
