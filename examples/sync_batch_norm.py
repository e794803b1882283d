"""Data-parallel training with synchronized batch norm over MPI.

    mpiexec -launcher fork -hosts 127.0.0.1 -n 2 python examples/sync_batch_norm.py

Every rank holds its own shard of each batch.  The model is
Linear -> SyncBatchNorm -> ReLU -> Linear, trained with SGD on a toy
two-class problem; the Linear gradients are summed over ranks with an
all-reduce (as any data-parallel trainer does), the batch-norm statistics and
gradients by SyncBatchNorm itself.  At the end each rank prints its accuracy
and whether its running statistics are bit-identical to rank 0's.
"""
import signal

import numpy as np
from mpi4py import MPI

import cnorm

comm = MPI.COMM_WORLD
rank, size = comm.Get_rank(), comm.Get_size()


def shard(rng, n):
    """This rank's n samples of a two-class problem in 8 dimensions."""
    labels = rng.integers(0, 2, n)
    x = rng.normal(0, 1, (n, 8)) + labels[:, None] * 1.5
    return x.astype(np.float32), labels


def allreduce_sum(a):
    out = np.empty_like(a)
    comm.Allreduce(a, out, op=MPI.SUM)
    return out


def train(steps=200, per_rank=32, lr=0.1, seed=0):
    init = np.random.default_rng(seed)             # same initial weights everywhere
    w1 = init.normal(0, 0.3, (8, 16)).astype(np.float32)
    w2 = init.normal(0, 0.3, (16, 2)).astype(np.float32)
    bn = cnorm.SyncBatchNorm(16, axis=1)
    data = np.random.default_rng(seed + 1 + rank)  # each rank its own shard
    total = per_rank * size
    for _ in range(steps):
        x, labels = shard(data, per_rank)
        h = x @ w1
        z = np.maximum(bn(h), 0)
        logits = z @ w2
        p = np.exp(logits - logits.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        dlogits = (p - np.eye(2, dtype=np.float32)[labels]) / total   # mean over all ranks
        dz = (dlogits @ w2.T) * (z > 0)
        dh = bn.backward(dz)                        # grads of the global batch statistics
        w2 -= lr * allreduce_sum(z.T @ dlogits)
        w1 -= lr * allreduce_sum(x.T @ dh)
        bn.weight -= lr * bn.grad_weight
        bn.bias -= lr * bn.grad_bias
    bn.eval()
    x, labels = shard(data, 1000)
    accuracy = float(np.mean((np.maximum(bn(x @ w1), 0) @ w2).argmax(1) == labels))
    return bn, accuracy


def main():
    bn, accuracy = train()
    reference = comm.bcast((bn.running_mean, bn.running_var), root=0)
    agree = all(np.array_equal(a, b) for a, b in zip(reference, (bn.running_mean,
                                                                 bn.running_var)))
    print(f"rank {rank}/{size}: accuracy {accuracy:.3f}, running statistics "
          f"{'agree' if agree else 'DIFFER'} with rank 0", flush=True)
    return agree, accuracy


if __name__ == "__main__":
    signal.alarm(300)   # a rank whose peer died would otherwise wait in MPI forever
    main()
