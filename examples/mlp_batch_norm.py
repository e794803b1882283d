"""Train a small NumPy MLP on a synthetic classification task, with and without
cnorm.BatchNorm between the layers, and print the loss curves.

    python examples/mlp_batch_norm.py [--steps 300] [--plot curves.png]

With matplotlib installed, --plot writes the loss and accuracy curves of
both runs to a PNG; without it the example says so and prints them only.

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


def predict(x, w1, w2, bn):
    """Class scores in inference mode (BatchNorm on its running statistics)."""
    h = x @ w1
    if bn is not None:
        training = bn.training
        bn.eval()
        h = bn(h)
        bn.train(training)
    return np.maximum(h, 0) @ w2


def train(x, labels, use_bn, steps, lr=0.05, hidden=64, batch=128, seed=0, evals=10):
    """Losses per step, the final accuracy on x, and the accuracy measured
    at `evals` evenly spaced steps as (steps, accuracies)."""
    rng = np.random.default_rng(seed)
    d, k = x.shape[1], labels.max() + 1
    w1 = (rng.standard_normal((d, hidden)) / np.sqrt(d)).astype(np.float32)
    w2 = (rng.standard_normal((hidden, k)) / np.sqrt(hidden)).astype(np.float32)
    bn = cnorm.BatchNorm(hidden) if use_bn else None
    losses = []
    eval_at = set(np.linspace(1, steps, min(evals, steps), dtype=int))
    curve = ([], [])
    for step in range(1, steps + 1):
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
        if step in eval_at:
            curve[0].append(step)
            curve[1].append((predict(x, w1, w2, bn).argmax(axis=1) == labels).mean())
    accuracy = (predict(x, w1, w2, bn).argmax(axis=1) == labels).mean()
    return np.array(losses), accuracy, curve


def positive_int(text):
    n = int(text)
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {n}")
    return n


def plot(runs, path):
    """Loss and accuracy curves of each run into a PNG at path; False when
    matplotlib is not installed."""
    try:
        import matplotlib
    except ImportError:
        return False
    matplotlib.use("Agg")   # files only, no display needed
    import matplotlib.pyplot as plt

    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(10, 4))
    for label, (losses, _, (steps, accuracies)) in runs.items():
        loss_ax.plot(np.arange(1, len(losses) + 1), losses, label=label)
        acc_ax.plot(steps, accuracies, marker="o", label=label)
    loss_ax.set(xlabel="step", ylabel="training loss (batch)", yscale="log")
    acc_ax.set(xlabel="step", ylabel="accuracy (whole set)", ylim=(0, 1))
    for ax in (loss_ax, acc_ax):
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=positive_int, default=300)
    parser.add_argument("--plot", metavar="FILE.png", help="write the curves to a PNG")
    args = parser.parse_args(argv)
    x, labels = make_data(np.random.default_rng(1))
    runs = {}
    for use_bn in (False, True):
        label = f"{'with' if use_bn else 'without'} BatchNorm"
        runs[label] = losses, accuracy, _ = train(x, labels, use_bn, args.steps)
        shown = np.unique(np.linspace(0, len(losses) - 1, min(7, len(losses)), dtype=int))
        curve = " ".join(f"{losses[i]:.3f}" for i in shown)
        print(f"{label:>17}: loss {curve} -> {losses[-20:].mean():.3f}, "
              f"accuracy {accuracy:.1%}")
    if args.plot:
        if plot(runs, args.plot):
            print(f"wrote {args.plot}")
        else:
            print("--plot needs matplotlib (pip install matplotlib): curves printed only")
    return runs


if __name__ == "__main__":
    main()
