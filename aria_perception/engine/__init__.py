"""The ROS-free inference engine (torch): MiDaS small, YOLO, fusion, CUDA streams and graphs.

Only the worker child process and the benchmarks import this package; the node never does.
"""

from aria_perception.engine.detector import YoloDetector
from aria_perception.engine.engine import Engine
from aria_perception.engine.fusion import box_depth_median, box_depth_median_lowres
from aria_perception.engine.midas import MIDAS_SMALL_CFG, MidasSmall
from aria_perception.engine.midas_weights import create_midas_small, load_midas_weights
from aria_perception.engine.plan_cache import ENGINE_MAX_PLAN_BYTES, ENGINE_MAX_PLANS
from aria_perception.engine.preprocess import MidasPreprocess, midas_input_size, upsample_depth
from aria_perception.engine.yolo_post import DetectionTensors
from aria_perception.engine.yolo_weights import find_weights, models_dir
from aria_perception.records import validate_engine_config

__all__ = [
    "ENGINE_MAX_PLANS",
    "ENGINE_MAX_PLAN_BYTES",
    "MIDAS_SMALL_CFG",
    "DetectionTensors",
    "Engine",
    "MidasPreprocess",
    "MidasSmall",
    "YoloDetector",
    "box_depth_median",
    "box_depth_median_lowres",
    "create_midas_small",
    "find_weights",
    "load_midas_weights",
    "midas_input_size",
    "models_dir",
    "upsample_depth",
    "validate_engine_config",
]
