"""The rclpy adapter: node, image codec, messages, parameters, diagnostics (no torch)."""
