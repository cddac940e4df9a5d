"""Tuning on a dataset's traces, on this computer: the generator (LoRA or full
fine-tuning) and the search's embedder, each in a worker process, and the alternating
rounds of both.

service (prepare a run once, launch it) → spec + preflight (checked before anything
starts) → runs (the run folder) → process (the worker's command line, started and
watched) → worker (the child process: trainer / embedder_trainer, checkpoints, typed
events) → finish + gguf_export (llama.cpp files) → the tuned model lands in
:mod:`core.models.installed`, the tuned embedder under ``<data>/embedders``. rounds
alternates embedder and generator runs.

May import :mod:`core.dataset`, :mod:`core.workspace`, :mod:`core.models`,
:mod:`core.agent`, :mod:`core.knowledge`, :mod:`core.llm` and the base modules; never
:mod:`core.colab` (Colab builds on this package) or :mod:`core.cli`.
"""
