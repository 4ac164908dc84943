"""Host tools: stream EDF recordings to a board over serial and compare its results.

Layers (each usable as a library; docs/streaming.md): protocol (frames) -> transport (ports) ->
device (requests, and the selective-repeat sender) -> operations (stream, robustness, bench,
with the run folder and its report) -> CLI (``host_tools``).
"""

__version__ = "0.1.0"
