"""Every SIMD path the CPU supports gives the same results within rounding.

The path is chosen once per process (CNORM_SIMD caps it), so each path runs
the core computations in a subprocess; the results are compared with each
other and with the float64 reference.
"""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import reference as ref
from conftest import assert_close

PATHS = ["baseline", "avx2", "avx512"]

CORE = textwrap.dedent(
    """
    import sys
    import numpy as np
    import cnorm

    rng = np.random.default_rng(7)
    out = {"path": np.array(cnorm._kernels.simd_path())}
    for dtype in (np.float32, np.float64):
        t = np.dtype(dtype).name
        for name, shape, axis in [("nchw", (4, 6, 9, 11), 1), ("nhwc", (4, 9, 11, 6), -1),
                                  ("big", (8, 3, 64, 64), 1)]:
            x = (rng.standard_normal(shape) * 2 + 3).astype(dtype)
            dy = rng.standard_normal(shape).astype(dtype)
            C = shape[axis]
            w = rng.uniform(0.5, 1.5, C).astype(dtype)
            b = rng.standard_normal(C).astype(dtype)
            y, mean, invstd = cnorm.batch_norm_train(x, w, b, axis=axis)
            dx, dw, db = cnorm.batch_norm_backward(dy, x, mean, invstd, w, axis=axis)
            yi = cnorm.batch_norm_infer(x, mean, 1 / invstd**2, w, b, axis=axis)
            for k, v in dict(x=x, dy=dy, w=w, b=b, y=y, mean=mean, invstd=invstd, dx=dx,
                             dw=dw, db=db, yi=yi).items():
                out[f"bn_{name}_{t}_{k}"] = v
        h = rng.standard_normal((33, 70)).astype(dtype) + 5
        dh = rng.standard_normal((33, 70)).astype(dtype)
        g = rng.uniform(0.5, 1.5, 70).astype(dtype)
        y, mean, rstd = cnorm.layer_norm(h, 70, g)
        dx, dw, db = cnorm.layer_norm_backward(dh, h, mean, rstd, 70, g)
        out.update({f"ln_{t}_h": h, f"ln_{t}_dh": dh, f"ln_{t}_g": g, f"ln_{t}_y": y,
                    f"ln_{t}_dx": dx, f"ln_{t}_dw": dw})
        z = rng.standard_normal((3, 8, 5, 7)).astype(dtype)
        out[f"gn_{t}_x"] = z
        out[f"gn_{t}_y"] = cnorm.group_norm(z, 4)[0]
        out[f"in_{t}_y"] = cnorm.instance_norm(z)[0]
        out[f"rms_{t}_y"] = cnorm.rms_norm(h, 70, g)[0]
    # float16 conversions (F16C on the avx2 and avx512 paths): every half,
    # and floats at every exponent with the halfway bit set (ties) or not
    from cnorm.lowp import downcast, upcast
    halves = np.arange(2**16, dtype=np.uint32).astype(np.uint16).view(np.float16)
    out["f16_up"] = upcast(halves)
    bits = np.arange(2**19, dtype=np.uint32) << 13
    floats = np.concatenate([(bits | 0x1000).view(np.float32), (bits | 0x1001).view(np.float32),
                             bits.view(np.float32)])
    out["f16_floats"] = floats
    out["f16_down"] = downcast(floats, np.dtype(np.float16))
    try:   # bfloat16 loops (compiled again for AVX2)
        import ml_dtypes
        bf = np.dtype(ml_dtypes.bfloat16)
        out["bf16_up"] = upcast(halves.view(bf))
        out["bf16_down"] = downcast(floats, bf).view(np.uint16)
    except ImportError:
        pass
    np.savez(sys.argv[1], **out)
    """
)


def run_path(path, tmp_path):
    target = tmp_path / f"{path}.npz"
    env = dict(os.environ, CNORM_SIMD=path)
    subprocess.run([sys.executable, "-c", CORE, str(target)], env=env, check=True,
                   timeout=120)
    return dict(np.load(target))


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("simd")
    found = {}
    for path in PATHS:
        r = run_path(path, tmp)
        if str(r["path"]) == path:  # the CPU supports it
            found[path] = r
    return found


def test_baseline_path_always_available(results):
    assert "baseline" in results


@pytest.mark.parametrize("path", PATHS)
def test_path_matches_reference(results, path):
    if path not in results:
        pytest.skip(f"CPU does not support the {path} path")
    r = results[path]
    for t in ("float32", "float64"):
        for name, axis in [("nchw", 1), ("nhwc", -1), ("big", 1)]:
            p = f"bn_{name}_{t}_"
            ey, emean, einv = ref.bn_train(r[p + "x"], r[p + "w"], r[p + "b"], axis=axis)
            assert_close(r[p + "y"], ey, err_msg=p)
            assert_close(r[p + "mean"], emean, err_msg=p)
            edx = ref.bn_backward(r[p + "dy"], r[p + "x"], r[p + "mean"], r[p + "invstd"],
                                  r[p + "w"], axis=axis)[0]
            assert_close(r[p + "dx"], edx, err_msg=p)
        h, g = r[f"ln_{t}_h"], r[f"ln_{t}_g"]
        assert_close(r[f"ln_{t}_y"], ref.layer_norm(h, 70, g)[0], err_msg=t)
        assert_close(r[f"ln_{t}_dx"], ref.layer_norm_backward(r[f"ln_{t}_dh"], h, 70, g)[0])
        z = r[f"gn_{t}_x"]
        assert_close(r[f"gn_{t}_y"], ref.group_norm(z, 4)[0])
        assert_close(r[f"in_{t}_y"], ref.instance_norm(z)[0])
        assert_close(r[f"rms_{t}_y"], ref.rms_norm(h, 70, g)[0])


def test_paths_agree_within_rounding(results):
    base = results["baseline"]
    for path, r in results.items():
        for key, value in r.items():
            if key == "path":
                continue
            np.testing.assert_allclose(
                value, base[key], rtol=1e-5 if value.dtype == np.float32 else 1e-12,
                atol=1e-5 if value.dtype == np.float32 else 1e-12, err_msg=f"{path} {key}")


@pytest.mark.parametrize("path", PATHS)
def test_float16_conversions_equal_numpys_on_every_path(results, path):
    if path not in results:
        pytest.skip(f"CPU does not support the {path} path")
    r = results[path]
    halves = np.arange(2**16, dtype=np.uint32).astype(np.uint16).view(np.float16)
    np.testing.assert_array_equal(r["f16_up"], halves.astype(np.float32))  # NaN == NaN here
    with np.errstate(over="ignore", invalid="ignore"):
        expected = r["f16_floats"].astype(np.float16)
    got = r["f16_down"]
    same = (got.view(np.uint16) == expected.view(np.uint16)) | (np.isnan(got) & np.isnan(expected))
    assert same.all(), r["f16_floats"][~same][:5]


@pytest.mark.parametrize("path", PATHS)
def test_bfloat16_conversions_equal_ml_dtypes_on_every_path(results, path):
    ml = pytest.importorskip("ml_dtypes")
    if path not in results:
        pytest.skip(f"CPU does not support the {path} path")
    r = results[path]
    bits = np.arange(2**16, dtype=np.uint32)
    np.testing.assert_array_equal(r["bf16_up"].view(np.uint32), bits << 16)
    with np.errstate(over="ignore", invalid="ignore"):
        expected = r["f16_floats"].astype(ml.bfloat16).astype(np.float32)
    got = r["bf16_down"].view(ml.bfloat16).astype(np.float32)
    same = (got.view(np.uint32) == expected.view(np.uint32)) | (np.isnan(got) & np.isnan(expected))
    assert same.all(), r["f16_floats"][~same][:5]
