"""A process group that re-forms after ``torchrun`` restarts its workers (``--max-restarts``).

Why a plain ``init_process_group`` fails on a restart, about every other time: with the c10d (and static)
rendezvous, ``torchrun``'s agent hosts one TCPStore for the whole job and hands it to every round of workers
(``TORCHELASTIC_USE_AGENT_STORE=True``, the same ``MASTER_ADDR:MASTER_PORT`` each round). The process group
writes its keys under a fixed prefix (``default_pg/0/...``), so the restarted workers find the dead workers'
keys still there: gloo's full-mesh connect then reads a dead peer's listening address unless the new peer has
overwritten it first, and fails with ``Gloo connectFullMesh failed ... Connection refused`` (NCCL reads a stale
unique id the same way; pytorch/pytorch#135712). ``TORCHELASTIC_RESTART_COUNT`` cannot name the round: each
agent counts its own restarts, and on several nodes the counts differ (a node restarted for a peer's failure
counts a membership change, not a restart).

The fix: before the process group is made, the workers agree on a fresh name for this round with a handshake
that stale keys cannot fool (:func:`agree_on_round`), and the group's keys go under that name.
"""
import os
import time
import uuid
from datetime import timedelta

KEY = 'hint_plugin/round_handshake'
POLL_SECONDS = 0.01


def uses_agent_store():
    """Whether torchrun's agent serves a store that outlives restarts (set by torchrun for its workers)."""
    return os.environ.get('TORCHELASTIC_USE_AGENT_STORE') == 'True'


def agree_on_round(store, rank, world_size, timeout=timedelta(minutes=30)):
    """A name all ``world_size`` workers of this round share and no earlier round used.

    Rank 0 draws a random token; every other rank draws its own and posts it (``hello/<rank>``). Rank 0 answers
    each hello with ``<hello>:<token>``; a rank accepts only an answer carrying its own fresh token, then
    confirms by posting the answer (``ready/<rank>``), which rank 0 accepts only when it carries its fresh token.
    Keys left by a dead round hold other tokens and are overwritten or ignored, never believed.
    """
    token = uuid.uuid4().hex
    deadline = time.monotonic() + timeout.total_seconds()

    def read(key):
        return store.get(key).decode() if store.check([key]) else None

    def wait():
        if time.monotonic() > deadline:
            raise TimeoutError(f'rank {rank}: the workers of this round did not all join the process-group '
                               f'handshake within {timeout} (a worker failed to start?)')
        time.sleep(POLL_SECONDS)

    if rank == 0:
        answered, pending = {}, set(range(1, world_size))
        while pending:
            for peer in sorted(pending):
                hello = read(f'{KEY}/hello/{peer}')
                if hello is None:
                    continue
                answer = f'{hello}:{token}'
                if read(f'{KEY}/ready/{peer}') == answer:
                    pending.discard(peer)
                elif answered.get(peer) != answer:
                    store.set(f'{KEY}/answer/{peer}', answer)
                    answered[peer] = answer
            if pending:
                wait()
        return token
    store.set(f'{KEY}/hello/{rank}', token)
    while True:
        answer = read(f'{KEY}/answer/{rank}')
        if answer is not None and answer.startswith(f'{token}:'):
            store.set(f'{KEY}/ready/{rank}', answer)
            return answer.split(':', 1)[1]
        wait()


def init_process_group(backend, **kwargs):
    """``torch.distributed.init_process_group`` from torchrun's environment (``env://``); under an agent's
    store that outlives restarts, with the group's keys under a name fresh to this round."""
    import torch.distributed as dist

    if not uses_agent_store():
        dist.init_process_group(backend=backend, **kwargs)
        return
    rank, world_size = int(os.environ['RANK']), int(os.environ['WORLD_SIZE'])
    timeout = kwargs.pop('timeout', timedelta(minutes=30))
    store, _, _ = next(dist.rendezvous('env://', rank, world_size, timeout=timeout))
    round_name = agree_on_round(store, rank, world_size, timeout)
    dist.init_process_group(backend=backend, store=dist.PrefixStore(f'hint_plugin/round/{round_name}/', store),
                            rank=rank, world_size=world_size, timeout=timeout, **kwargs)
