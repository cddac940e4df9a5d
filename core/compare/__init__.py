"""Models measured on questions: one model on a question set (`cotrag eval`), two models
paired per question with McNemar's test (`cotrag compare`, the Compare tab), and the
``service`` both call; may import ``core.dataset``, ``core.workspace``, ``core.models``,
``core.agent``, ``core.knowledge``, ``core.llm`` and the base modules, never
``core.training``, ``core.colab`` or ``core.cli``."""
