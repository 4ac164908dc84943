"""Converter: trained ULW-SleepNet -> ONNX (float reference) -> int8 TFLite for TFLite Micro ->
C for the firmware's own int8 engine, each step verified (``python -m converter build``).

Modules: ``export`` (ONNX, Keras mirror, int8 TFLite), ``keras_mirror``, ``graph`` (reading the
.tflite, TFLM's integer parameters, the engine's plan), ``codegen`` (C from templates),
``tflm`` (TFLite Micro host runtime), ``native`` (the C engine compiled for the host), ``build``.
"""
