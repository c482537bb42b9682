"""Receiving: what people send an app robot, over Stream mode or HTTP callbacks (§12, §13)."""
