"""The ROS-free inference engine (torch): MiDaS small, YOLO, fusion, CUDA streams."""
