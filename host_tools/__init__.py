"""Host tools: stream EDF recordings to a board over serial and compare its results.

Layers (each usable as a library): protocol -> device -> operations -> CLI (``host_tools``).
"""

__version__ = "0.1.0"
