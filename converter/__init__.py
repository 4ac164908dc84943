"""Converter: PyTorch ULW-SleepNet -> ONNX (float reference) -> int8 TFLite -> C for the firmware.

Not implemented yet; see README.md for the status.
"""
