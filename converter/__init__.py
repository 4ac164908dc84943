"""Converter: trained ULW-SleepNet -> ONNX (float reference) -> int8 TFLite for TFLite Micro ->
C for the firmware's own int8 engine, each step verified (``python -m converter build``).

Modules, in the order a build uses them:
``export`` (ONNX, int8 TFLite) and ``keras_mirror`` (the Keras copy TFLite is converted from);
``graph`` (reading the .tflite, TFLite Micro's int8 op check); ``tflm_params`` (TFLite Micro's
integer parameters: multipliers, shifts, activation ranges, padding); ``lowering`` (one engine
step per op); ``fusion`` (fused separable and shortcut+ADD steps, and their kernels' rules);
``plan`` (the engine's plan: steps and static arena); ``codegen`` (C and engine_layers.json from
templates); ``native`` (the C engine compiled for the host, checked against TFLite Micro);
``build`` (all of it, with the report); ``vectors`` (test vectors for the on-target tests);
``cli``. TFLite Micro's host runtime is ``sleepdata.tflm``.
"""
