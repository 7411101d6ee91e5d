"""flap."""
