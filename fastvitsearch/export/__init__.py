"""Core ML export (coremltools) and the import of latencies timed on Apple devices."""
