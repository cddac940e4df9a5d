"""The tag loop: prompts, escaping, grammars, the streaming tag parser, the loop itself,
its typed events and the run record; imports core.llm, core.knowledge's types and the
bottom layers, never core.dataset, core.training, core.models, core.workspace or core.cli."""
