"""Fork bomb through `multiprocessing`: processes that outlive the worker and the pool.

Layer: static policy (import of 'multiprocessing' refused). Behind it: RLIMIT_NPROC=0,
start_new_session + killpg, PR_SET_PDEATHSIG.
Expect: rejected reason="policy: line" reason="import of 'multiprocessing' is not allowed"
"""

import multiprocessing


def forever():
    while True:
        multiprocessing.Process(target=forever).start()


def propose(ctx):
    if ctx["cycle"] >= 1:
        for _ in range(8):
            multiprocessing.Process(target=forever).start()
    return []
