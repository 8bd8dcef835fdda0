"""Profiling of (encoder, resolution, LLM) points: counting, the timing protocol, runtimes,
devices (the ``Device`` protocol and its table), TTFT composition and latency models."""
