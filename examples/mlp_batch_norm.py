"""Train a small NumPy MLP on a synthetic classification task, with and without
cnorm.BatchNorm between the layers, and print the loss curves.

    python examples/mlp_batch_norm.py [--steps 300]

The inputs are badly scaled on purpose (features spanning six orders of
magnitude), which is where batch normalization earns its keep.
"""
import argparse

import numpy as np

import cnorm


def make_data(rng, n=4096, features=20, classes=4):
    centers = rng.standard_normal((classes, features)) * 2
    labels = rng.integers(0, classes, n)
    x = centers[labels] + rng.standard_normal((n, features))
    scales = np.logspace(-3, 3, features)  # features on wildly different scales
    return (x * scales).astype(np.float32), labels


def softmax_cross_entropy(logits, labels):
    """Mean loss and its gradient with respect to the logits."""
    z = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    n = len(labels)
    loss = -np.log(p[np.arange(n), labels] + 1e-12).mean()
    p[np.arange(n), labels] -= 1
    return loss, p / n


def train(x, labels, use_bn, steps, lr=0.05, hidden=64, batch=128, seed=0):
    rng = np.random.default_rng(seed)
    d, k = x.shape[1], labels.max() + 1
    w1 = (rng.standard_normal((d, hidden)) / np.sqrt(d)).astype(np.float32)
    w2 = (rng.standard_normal((hidden, k)) / np.sqrt(hidden)).astype(np.float32)
    bn = cnorm.BatchNorm(hidden) if use_bn else None
    losses = []
    for _ in range(steps):
        idx = rng.integers(0, len(x), batch)
        xb, yb = x[idx], labels[idx]
        h = xb @ w1
        if bn is not None:
            h = bn(h)  # (batch, hidden): channel axis 1
        a = np.maximum(h, 0)
        loss, dlogits = softmax_cross_entropy(a @ w2, yb)
        losses.append(loss)
        dw2 = a.T @ dlogits
        dh = (dlogits @ w2.T) * (h > 0)
        if bn is not None:
            dh = bn.backward(dh)
            bn.weight -= lr * bn.grad_weight
            bn.bias -= lr * bn.grad_bias
        dw1 = xb.T @ dh
        w1 -= lr * np.clip(dw1, -1, 1)
        w2 -= lr * dw2
    if bn is not None:
        bn.eval()
    logits = np.maximum(bn(x @ w1) if bn is not None else x @ w1, 0) @ w2
    accuracy = (logits.argmax(axis=1) == labels).mean()
    return np.array(losses), accuracy


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args(argv)
    x, labels = make_data(np.random.default_rng(1))
    for use_bn in (False, True):
        losses, accuracy = train(x, labels, use_bn, args.steps)
        curve = " ".join(f"{losses[i]:.3f}" for i in range(0, len(losses), len(losses) // 6))
        print(f"{'with' if use_bn else 'without':>7} BatchNorm: loss {curve} -> "
              f"{losses[-20:].mean():.3f}, accuracy {accuracy:.1%}")


if __name__ == "__main__":
    main()
