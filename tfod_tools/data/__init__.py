"""Data layer: one in-memory model for ground truth and detections, and the file formats around it."""
