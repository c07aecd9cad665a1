"""`bloom-worker`, the pods' entrypoint, configured only by the env contract (env.py).

Without the per-process variables (RANK, LOCAL_RANK) it is the pod's launcher (launcher.py), which
starts one rank process per GPU; with them it is one rank (rank.py), started by that launcher or by
torchrun. The launcher does not import torch.
Exit codes: 0 on a clean stop, 2 for a bad environment, 1 for any other failure.
"""

from __future__ import annotations

import logging
import os
import sys

from . import env as envmod


def run() -> int:
    try:
        env = envmod.parse_rank_env() if envmod.is_rank_process() else envmod.parse_pod_env()
    except envmod.EnvError as e:
        print(f"bloom-worker: error: {e}", file=sys.stderr, flush=True)
        return 2
    if isinstance(env, envmod.RankEnv):
        from .rank import run_rank

        return run_rank(env)
    from .launcher import run_launcher

    return run_launcher(env)


def main() -> None:
    try:
        code = run()
    except Exception as e:  # noqa: BLE001
        logging.getLogger("bloom_worker").exception("unexpected failure")
        print(f"bloom-worker: error: {e}", file=sys.stderr, flush=True)
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    # skip interpreter teardown: communicator threads must not hold a dying process up
    os._exit(code)


if __name__ == "__main__":
    main()
