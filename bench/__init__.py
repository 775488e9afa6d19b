"""The benchmark harness of dossier-stream (``python -m bench``; see ``bench/README.md``).

One run on one machine against one embedded Tansu broker: the same
pre-produced simulator events are consumed by a plain aiokafka consumer
(*ceiling*), a stock Faust agent that does nothing (*faust-bare*), a
straightforward per-event Faust agent (*naive*) and the real worker
(*dossier-stream*), each in its own subprocess; then the worker's freshness
at a steady rate and the memory held per open dossier are measured.

This package is a development tool: it is not part of the wheel.
"""
