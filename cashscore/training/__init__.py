"""Training: compare, tune, calibrate, export to ONNX, evaluate and report (never imported by the server)."""
