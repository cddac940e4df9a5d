"""Fine-tuning the generator on a dataset's traces, in a child process.

spec (the job) → preflight (checked before anything starts) → worker (the child
process: engine, checkpoints, JSON events) → gguf_export (llama.cpp files) → the
tuned model lands in :mod:`core.models.registry`.
"""
