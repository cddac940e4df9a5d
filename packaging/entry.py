"""The frozen bundle's one entry script (``build.spec``): one program, several roles.

The bundle's program answers as ``cotrag-studio`` (the window) or, started by the name
``cotrag`` (a link to it; a second executable on Windows), as the command line. Either one also
runs, as the first argument says, the jobs that a source install starts with its Python
interpreter: the training worker (``--train-worker``, see ``core.training.process``) and
``torch.distributed.run`` for a run with several processes (``--torchrun``).
"""

from __future__ import annotations

import multiprocessing
import sys
from pathlib import Path

from core.training.process import FROZEN_FLAG, TORCHRUN_FLAG

CLI_NAME = "cotrag"


def main() -> int:
    # Nothing is written into the installed bundle (llama.cpp's conversion code is imported
    # from its folder there): a package removal leaves no stray __pycache__ behind.
    sys.dont_write_bytecode = True
    multiprocessing.freeze_support()
    argv = sys.argv[1:]
    if argv[:1] == [FROZEN_FLAG]:
        from core.training.worker import main as worker_main

        return worker_main(argv[1:])
    if argv[:1] == [TORCHRUN_FLAG]:
        from torch.distributed.run import main as torchrun_main

        torchrun_main(argv[1:])
        return 0
    if Path(sys.argv[0]).stem == CLI_NAME:
        from core.cli import main as cli_main

        return cli_main(argv)
    from desktop.__main__ import main as app_main

    return app_main(argv)


if __name__ == "__main__":
    sys.exit(main())
