"""Rosbag replay benchmark, sample data and reports."""
