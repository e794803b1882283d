"""`python -m cnorm bench` as a user runs it: the table fits 100 columns,
--json and --plot write their files, --plot without matplotlib is refused
before anything is measured.  (Timings are not checked: no timed tests.)"""
import importlib.util
import json

import pytest

from cnorm import __main__ as cli
from cnorm.bench import plot

TINY = ["bench", "--quick", "--repeat", "1", "--threads", "1", "--cases", "layer_norm 1x768"]


def test_table_fits_100_columns(capsys, tmp_path):
    path = tmp_path / "r.json"
    assert cli.main([*TINY, "--json", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert max(len(line) for line in lines) <= 100, max(lines, key=len)
    assert any(line.startswith("layer_norm 1x768") for line in lines)
    (row,) = json.loads(path.read_text())["results"]
    assert row["cnorm_gb_per_s"] > 0


@pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None, reason="no matplotlib")
def test_plot_writes_a_png(tmp_path, capsys):
    path = tmp_path / "ratios.png"
    assert cli.main([*TINY, "--plot", str(path)]) == 0
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"wrote {path}" in capsys.readouterr().out


def test_plot_without_matplotlib_is_refused_first(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(plot, "available", lambda: False)
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*TINY, "--plot", str(tmp_path / "x.png")])
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    assert "--plot needs matplotlib" in captured.err
    assert "layer_norm" not in captured.out   # nothing was measured


@pytest.mark.parametrize("bad", [["--json", "{missing}/r.json"], ["--json", "{tmp}"],
                                 ["--plot", "{missing}/r.png"], ["--plot", "{tmp}/r.txt"],
                                 ["--threads", "1,3000000000"],
                                 ["--shapes", "99999999999999999999999x2"]])
def test_bad_outputs_and_sizes_are_refused_before_measuring(bad, capsys, tmp_path):
    if bad[0] == "--plot" and importlib.util.find_spec("matplotlib") is None:
        pytest.skip("no matplotlib")
    args = [a.format(missing=tmp_path / "missing", tmp=tmp_path) for a in bad]
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*TINY, *args])
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    assert bad[0] in captured.err and "layer_norm" not in captured.out


def test_bench_leaves_torch_as_it_was():
    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()
    assert torch.is_grad_enabled()
    cli.main(TINY[:4] + ["--threads", "2", "--cases", "layer_norm 1x768"])
    assert torch.is_grad_enabled()
    assert torch.get_num_threads() == threads


def test_both_regimes_print_a_table_each(capsys, tmp_path):
    path = tmp_path / "r.json"
    assert cli.main([*TINY, "--regime", "both", "--json", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.count("\nwarm: ") == 1 and out.count("\ncold: ") == 1
    rows = json.loads(path.read_text())["results"]
    assert [r["regime"] for r in rows] == ["warm", "cold"]
    assert rows[1]["calls_per_sample"]["cnorm"] == 1   # one flushed call per sample


def test_check_fits_100_columns(capsys):
    """The main job's first part, the self-check, fits as the table does."""
    assert cli.main(["check"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert max(len(line) for line in lines) <= 100, max(lines, key=len)
