"""Training on a Colab GPU: the notebook a run becomes, the Colab CLI that runs it, the
way its results come back (a checked archive, or a private hub repo).

Entry: :mod:`core.colab.service` (``run_on_colab`` takes a run that
:func:`core.training.service.prepare_run` prepared). :mod:`core.colab.cells` is the
code that runs inside the notebook's kernel. May import :mod:`core.training` and the
layers below it; never :mod:`core.cli` or ``desktop``, and :mod:`core.training`
never imports this package.
"""
