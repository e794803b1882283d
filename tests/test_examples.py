"""The examples run and do what they say."""
import importlib.util
import pathlib

import numpy as np
import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"


def load(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_mlp_with_batch_norm_learns():
    mlp = load("mlp_batch_norm")
    x, labels = mlp.make_data(np.random.default_rng(1), n=1024)
    losses, accuracy, (steps, accuracies) = mlp.train(x, labels, use_bn=True, steps=120)
    assert losses[-20:].mean() < 0.5 * losses[:5].mean()
    assert accuracy > 0.6  # four classes: chance is 25%
    assert steps[-1] == 120 and accuracies[-1] == accuracy


@pytest.mark.parametrize("steps", [1, 2, 5, 7])
def test_mlp_example_takes_any_steps(steps, capsys):
    runs = load("mlp_batch_norm").main(["--steps", str(steps)])
    assert all(len(losses) == steps for losses, _, _ in runs.values())
    assert "with BatchNorm" in capsys.readouterr().out


@pytest.mark.parametrize("steps", ["0", "-3"])
def test_mlp_example_refuses_no_steps(steps):
    with pytest.raises(SystemExit):
        load("mlp_batch_norm").main(["--steps", steps])


def test_mlp_example_plot(tmp_path, capsys):
    path = tmp_path / "curves.png"
    load("mlp_batch_norm").main(["--steps", "5", "--plot", str(path)])
    out = capsys.readouterr().out
    if importlib.util.find_spec("matplotlib") is None:
        assert "needs matplotlib" in out and not path.exists()
    else:
        assert f"wrote {path}" in out
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_memmap_standardization_in_chunks(tmp_path, monkeypatch):
    example = load("standardize_memmap")
    monkeypatch.setattr(example, "CHUNK_ROWS", 1000)   # many chunks of a small file
    after = example.main(gigabytes=0.001, directory=tmp_path)
    np.testing.assert_allclose(after.mean, 0, atol=1e-5)
    np.testing.assert_allclose(after.std(), 1, atol=1e-5)
