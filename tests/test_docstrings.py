"""Every public function, class and method has a numpydoc docstring whose
sections match its signature, and every docstring example runs."""
import doctest
import inspect
import re

import numpy as np
import pytest

import cnorm

try:   # cnorm.dask imports dask: its function is checked where dask is installed
    from cnorm import dask as cnorm_dask
    DASK_FUNCTIONS = [cnorm_dask.moments]
except ImportError:
    DASK_FUNCTIONS = []

_SECTION = re.compile(r"^(\w[\w ]*)\n-{3,}$", re.MULTILINE)
_PARAMETER = re.compile(r"^(\*{0,2}\w+(?:, \*{0,2}\w+)*)(?: :.*)?$", re.MULTILINE)

# Constructors document their parameters in the class docstring (numpydoc).
CLASSES = [getattr(cnorm, name) for name in cnorm.__all__
           if inspect.isclass(getattr(cnorm, name))]
FUNCTIONS = [getattr(cnorm, name) for name in cnorm.__all__
             if inspect.isfunction(getattr(cnorm, name))] + DASK_FUNCTIONS


def _methods(cls):
    """Public methods and properties defined by cnorm (not NumPy's or object's)."""
    for name, value in inspect.getmembers(cls):
        if name.startswith("_") or not (inspect.isfunction(value) or inspect.ismethod(value)
                                        or isinstance(value, property)):
            continue
        owner = getattr(value, "__module__", None) or getattr(value.fget, "__module__", "")
        if owner.startswith("cnorm"):
            yield f"{cls.__name__}.{name}", value


METHODS = [item for cls in CLASSES for item in _methods(cls)]


def _sections(doc):
    """{section title: body} of a numpydoc docstring."""
    matches = list(_SECTION.finditer(doc))
    return {m.group(1): doc[m.end():(matches[i + 1].start() if i + 1 < len(matches)
                                     else len(doc))]
            for i, m in enumerate(matches)}


def _documented_names(body):
    names = set()
    for line in body.splitlines():
        if line and not line[0].isspace():
            match = _PARAMETER.match(line)
            if match:
                names.update(n.strip().lstrip("*") for n in match.group(1).split(","))
    return names


def _signature_names(func, skip_first=False):
    parameters = list(inspect.signature(func).parameters.values())
    if skip_first:
        parameters = parameters[1:]
    return {p.name for p in parameters}


def _check(obj, signature_of, *, skip_first, needs_returns, name):
    doc = inspect.getdoc(obj)
    assert doc, f"{name} has no docstring"
    summary = doc.splitlines()[0]
    assert summary.strip() and not summary.startswith("Initialize self"), name
    sections = _sections(doc)
    expected = _signature_names(signature_of, skip_first) if signature_of else set()
    if expected:
        assert "Parameters" in sections, f"{name}: no Parameters section"
        documented = _documented_names(sections["Parameters"])
        assert documented == expected, (
            f"{name}: documented {sorted(documented)}, signature {sorted(expected)}")
    if needs_returns:
        assert "Returns" in sections or "Yields" in sections, f"{name}: no Returns section"
    return sections


@pytest.mark.parametrize("func", FUNCTIONS, ids=lambda f: f.__name__)
def test_function_docstring(func):
    sections = _check(func, func, skip_first=False, name=func.__name__,
                      needs_returns=func not in (cnorm.set_num_threads, cnorm.show_config))
    assert "Examples" in sections, f"{func.__name__}: no Examples section"
    if inspect.signature(func).parameters:
        assert "Raises" in sections, f"{func.__name__}: no Raises section"


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_class_docstring(cls):
    sections = _check(cls, cls.__init__, skip_first=True, name=cls.__name__,
                      needs_returns=False)
    assert "Examples" in sections, f"{cls.__name__}: no Examples section"
    if not issubclass(cls, cnorm.Moments):
        assert "Raises" in sections, f"{cls.__name__}: no Raises section"
    init_doc = inspect.getdoc(cls.__init__) or ""
    assert not init_doc.startswith("Initialize self"), f"{cls.__name__}.__init__"


@pytest.mark.parametrize("name, method", METHODS, ids=[n for n, _ in METHODS])
def test_method_docstring(name, method):
    if isinstance(method, property):
        doc = inspect.getdoc(method)
        assert doc and doc.splitlines()[0].strip(), f"{name} has no docstring"
        return
    skip_first = not inspect.ismethod(method)   # classmethods are bound already
    _check(method, method, skip_first=skip_first, name=name, needs_returns=False)


def _examples():
    finder = doctest.DocTestFinder(exclude_empty=True)
    seen = set()
    for obj in [*FUNCTIONS, *CLASSES, *(m for _, m in METHODS)]:
        target = obj.fget if isinstance(obj, property) else obj
        for test in finder.find(target, name=getattr(target, "__qualname__", repr(target)),
                                globs={"np": np, "cnorm": cnorm}):
            if test.examples and test.name not in seen:
                seen.add(test.name)
                yield test


EXAMPLES = list(_examples())


@pytest.mark.parametrize("example", EXAMPLES, ids=[t.name for t in EXAMPLES])
def test_docstring_example_runs(example):
    if "StandardScaler" in example.name:
        pytest.importorskip("sklearn")
    if "dask" in example.name or "moments" == example.name:
        pytest.importorskip("dask.array")
    if "SyncBatchNorm" in example.name:
        pytest.importorskip("mpi4py")
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    with np.printoptions(precision=4, suppress=True, legacy="1.25"):
        runner.run(example)
    failures = runner.summarize(verbose=False).failed
    assert failures == 0, f"{example.name}: {failures} example(s) failed (see output above)"
