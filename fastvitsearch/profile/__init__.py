"""Profiling of (encoder, resolution, LLM) points: counting now, timing and TTFT later."""
