"""Fair, honest grading for the course's assignments: what every graded test cell calls.

:func:`grade` runs one checker of :mod:`scratchnet.course` (or one of the checkers below, for the
parts that are not backward passes) as a graded test, with two rules:

**One bug costs its own part only.**  A part that builds on earlier ones runs on scratchnet's
implementations of them: ``grade(check_bptt, rnn_backward, given=["rnn_step_backward"])`` puts
scratchnet's ``rnn_step_backward`` in the learner's namespace while their ``rnn_backward`` is
checked, so a wrong step backward loses the step backward's points, not the BPTT's too.  A name
``"package.module:attr"`` in ``given`` restores a module attribute the same way (the training
assignment installs the learner's functions in :mod:`scratchnet.nn`).

**No free answers.**  While a part is graded, scratchnet's own implementation of it cannot
score.  The function graded is refused when it *is* scratchnet's (the same object, its code, a
``functools.partial`` or ``functools.wraps`` of it); and every place that holds scratchnet's
version -- the attribute of its module and of every scratchnet module that imported it, the
entries of scratchnet's dictionaries (``REFERENCE``, ``losses.LOSSES``), the learner's globals
(``from scratchnet.nn.gru import gru_step_backward as g`` made before grading), the closures and
default arguments of the learner's functions -- holds a stand-in for the duration of the check.
The stand-in calls scratchnet's function as before, so the checker's own references work; but
called from inside the learner's function it raises :class:`ScratchnetAnswer`, which the checker
prints as one FAIL line::

    FAIL rnn_step_backward raised ScratchnetAnswer: scratchnet's own scratchnet.nn.rnn.rnn_step_backward
    was called while your rnn_step_backward is graded: it cannot score here -- write it yourself

A test that fails raises :class:`NotPassed` (an ``AssertionError``) with one line that names the
part and points at the checker's lines above it; nothing else reaches the learner.  (A learner
determined to cheat can still copy scratchnet's source by hand: this is a public repository.
The guard stops the shortcuts that take no understanding.)

The checkers here follow the ones of :mod:`scratchnet.course`: a title, one PASS/FAIL line per
quantity, ``hint:`` lines only when a hint's explanation reproduces the learner's numbers:
:func:`check_forward` (the RNN's step and sequence forward, max-pooling's forward),
:func:`check_conv_speed`, :func:`check_train_step`, :func:`check_train_loop` and
:func:`check_separate`.
"""
import contextlib
import functools
import importlib
import sys
import time
import types

import numpy as np

from ..gradcheck import rel_error
from . import _times

TOL = 1e-7

#: graded name -> the scratchnet functions ("module:attr", "module:Class.attr") that compute it,
#: and so cannot score while it is graded
SCRATCHNETS = {}
_RNN_FWD = ["scratchnet.nn.rnn:rnn_step_forward", "scratchnet.nn.rnn:rnn_forward",
            "scratchnet.nn.rnn:rnn_forward_fast", "scratchnet.nn.rnn:recurrence_forward",
            "scratchnet.nn.rnn:recurrence_forward_numpy"]
_RNN_BWD = ["scratchnet.nn.rnn:rnn_step_backward", "scratchnet.nn.rnn:rnn_backward",
            "scratchnet.nn.rnn:rnn_backward_fast", "scratchnet.nn.rnn:recurrence_backward",
            "scratchnet.nn.rnn:recurrence_backward_numpy"]
_LOSS = ["scratchnet.losses:_discriminative", "scratchnet.losses:discriminative_squared_error",
         "scratchnet.losses:discriminative_squared_error_numpy"]
SCRATCHNETS.update({
    "rnn_step_forward": _RNN_FWD,
    "rnn_forward": _RNN_FWD[1:],               # built on the step forward, which it may call
    "rnn_step_backward": _RNN_BWD,
    "rnn_backward": _RNN_BWD[1:],              # built on the step backward, which it may call
    "truncated_rnn_backward": _RNN_BWD[1:] + ["scratchnet.course.recurrent:truncated_rnn_backward",
                                              "scratchnet.course:truncated_rnn_backward"],
    "mask_forward": ["scratchnet.nn.mask:mask_forward", "scratchnet.nn.mask:mask_forward_fast"],
    "mask_backward": ["scratchnet.nn.mask:mask_backward", "scratchnet.nn.mask:mask_backward_fast"],
    "mse_loss": ["scratchnet.losses:mse_loss", "scratchnet.losses:_squared_error"] + _LOSS,
    "kl_loss": ["scratchnet.losses:kl_loss", "scratchnet.losses:_kl"] + _LOSS,
    "is_loss": ["scratchnet.losses:is_loss", "scratchnet.losses:_itakura_saito"] + _LOSS,
    "conv1d_backward_loops": ["scratchnet.nn.conv1d:conv1d_backward", "scratchnet.nn.conv1d:conv1d_backward_fast",
                              "scratchnet.course._guard:conv1d_backward_loops"],
    "maxpool1d_forward": ["scratchnet.nn.maxpool1d:maxpool1d_forward", "scratchnet.nn.maxpool1d:maxpool1d_forward_fast"],
    "maxpool1d_backward": ["scratchnet.nn.maxpool1d:maxpool1d_backward",
                           "scratchnet.nn.maxpool1d:maxpool1d_backward_fast"],
    "lstm_step_backward": ["scratchnet.nn.lstm:lstm_step_backward", "scratchnet.nn.lstm:lstm_backward",
                           "scratchnet.nn.lstm:lstm_backward_fast", "scratchnet.nn.lstm:recurrence_backward",
                           "scratchnet.nn.lstm:recurrence_backward_numpy"],
    "gru_step_backward": ["scratchnet.nn.gru:gru_step_backward", "scratchnet.nn.gru:gru_backward",
                          "scratchnet.nn.gru:gru_backward_fast", "scratchnet.nn.gru:recurrence_backward",
                          "scratchnet.nn.gru:recurrence_backward_numpy"],
    "train_step": ["scratchnet.course._guard:reference_train_step", "scratchnet.training.loop:train_step",
                   "scratchnet.models.model:Model.loss_and_grad"],
    "train": ["scratchnet.course._guard:reference_train", "scratchnet.training.loop:run_epoch",
              "scratchnet.training.loop:run_stage", "scratchnet.training.loop:train"],
    "separate": ["scratchnet.course._guard:reference_separate", "scratchnet.separation:ModelSeparator.separate",
                 "scratchnet.separation:ModelSeparator._estimates", "scratchnet.separation:ModelSeparator.vocal_mask",
                 "scratchnet.separation:ModelSeparator.vocal_mask_of", "scratchnet.separation:separate_array",
                 "scratchnet.separation:separate_chunked", "scratchnet.separation:separate_channels"],
})
SCRATCHNETS["conv1d_backward"] = SCRATCHNETS["conv1d_backward_loops"]

#: the result of the last graded test of each name in this kernel (see :func:`passed`)
RESULTS = {}


class ScratchnetAnswer(Exception):
    """Scratchnet's own implementation of the part being graded was called by the learner's code."""


class NotPassed(AssertionError):
    """A graded test failed; its message names the part, the checker's lines above say why."""


# --------------------------------------------------------------------------- the guard
_inside = [0]  # > 0 while the learner's graded function runs


def _resolve(spec):
    """"module:attr" or "module:Class.attr" -> (owner object, attribute name, value), or None."""
    module, _, path = spec.partition(":")
    try:
        owner = importlib.import_module(module)
        *outer, attr = path.split(".")
        for part in outer:
            owner = getattr(owner, part)
        return owner, attr, owner.__dict__[attr] if isinstance(owner, type) else getattr(owner, attr)
    except (ImportError, AttributeError, KeyError):
        return None


def scratchnets(name):
    """{scratchnet function object: "module.attr"} of graded name ``name``."""
    if name not in SCRATCHNETS:
        raise KeyError(f"no graded part {name!r}: choose among {', '.join(sorted(SCRATCHNETS))}")
    out = {}
    for spec in SCRATCHNETS[name]:
        found = _resolve(spec)
        if found is not None and isinstance(_original(found[2]), types.FunctionType):
            out[_original(found[2])] = spec.replace(":", ".")
    return out


def _original(f):
    return getattr(f, "_scratchnet_original", f)


def _stand_in(orig, where, graded):
    @functools.wraps(orig)
    def stand_in(*args, **kwargs):
        if _inside[0]:
            raise ScratchnetAnswer(f"scratchnet's own {where} was called while your {graded} is graded: "
                                   f"it cannot score here -- write it yourself")
        return orig(*args, **kwargs)
    stand_in._scratchnet_original = orig
    return stand_in


def is_scratchnets(fn, name):
    """Where scratchnet holds ``fn`` ("scratchnet.nn.rnn.rnn_step_backward") if ``fn`` is its own
    implementation of ``name`` (the object, its code, a partial or a wraps of it); else None."""
    origs = scratchnets(name)
    seen, f = set(), fn
    while f is not None and id(f) not in seen:
        seen.add(id(f))
        f = _original(f)
        if f in origs:
            return origs[f]
        code = getattr(f, "__code__", None)
        for o, where in origs.items():
            if code is not None and (code is o.__code__ or (code.co_filename == o.__code__.co_filename
                                                            and code.co_name == o.__code__.co_name)):
                return where  # a copy of scratchnet's function, or of a reloaded module
        f = getattr(f, "__wrapped__", None) or getattr(f, "func", None)
    return None


class _Swaps:
    """Replacements made for the duration of a check, undone in reverse order."""

    def __init__(self):
        self.undo = []

    def setitem(self, d, key, value):
        self.undo.append(lambda old=d[key]: d.__setitem__(key, old))
        d[key] = value

    def setattr(self, obj, attr, value):
        old = obj.__dict__[attr] if isinstance(obj, type) else getattr(obj, attr)
        self.undo.append(lambda: setattr(obj, attr, old))
        setattr(obj, attr, value)

    def restore(self):
        while self.undo:
            self.undo.pop()()


def _install_stand_ins(swaps, origs, graded, namespace):
    """Put a stand-in wherever scratchnet's functions in ``origs`` can be reached from."""
    stands = {o: _stand_in(o, where, graded) for o, where in origs.items()}
    seen = set()

    def swap_in_container(c):
        if id(c) in seen:
            return
        seen.add(id(c))
        if isinstance(c, dict):
            for k, v in list(c.items()):
                if _is_fn(v) and v in stands:
                    swaps.setitem(c, k, stands[v])
        elif isinstance(c, list):
            for i, v in enumerate(c):
                if _is_fn(v) and v in stands:
                    swaps.setitem(c, i, stands[v])

    def swap_in_closure(f):
        """A function that wraps one of scratchnet's (the training assignment installs
        ``counted(rnn_step_backward)`` in scratchnet.nn.rnn) gets the stand-in in its closure."""
        for cell in getattr(f, "__closure__", None) or ():
            try:
                c = cell.cell_contents
            except ValueError:  # an empty cell
                continue
            if _is_fn(c) and c in stands:
                swaps.setattr(cell, "cell_contents", stands[c])

    for mod_name, module in list(sys.modules.items()):
        if not (mod_name == "scratchnet" or mod_name.startswith("scratchnet.")) or module is None:
            continue
        for attr, v in list(vars(module).items()):
            if _is_fn(v) and v in stands:
                swaps.setattr(module, attr, stands[v])
            elif _is_fn(v) and v.__closure__ and v.__module__ != mod_name:
                swap_in_closure(v)  # a learner's wrapper put in a scratchnet module
            elif isinstance(v, (dict, list)):
                swap_in_container(v)
            elif isinstance(v, type) and v.__module__ == mod_name:
                for cattr, cv in list(vars(v).items()):
                    if _is_fn(cv) and cv in stands:
                        swaps.setattr(v, cattr, stands[cv])
    # the learner's namespace: bindings, containers one level deep, closures and defaults
    for key, v in list(namespace.items()):
        if key.startswith("__"):
            continue
        if _is_fn(v) and v in stands:
            swaps.setitem(namespace, key, stands[v])
        elif isinstance(v, (dict, list)):
            swap_in_container(v)
        elif isinstance(v, types.FunctionType) and v.__globals__ is namespace:
            swap_in_closure(v)
            for attr in ("__defaults__",):
                d = getattr(v, attr)
                if d and any(_is_fn(x) and x in stands for x in d):
                    swaps.setattr(v, attr, tuple(stands.get(x, x) if _is_fn(x) else x for x in d))
            kw = v.__kwdefaults__
            if kw and any(_is_fn(x) and x in stands for x in kw.values()):
                swaps.setattr(v, "__kwdefaults__", {k: stands.get(x, x) if _is_fn(x) else x for k, x in kw.items()})


def _is_fn(v):
    return isinstance(v, types.FunctionType)


def _reference(name):
    """scratchnet's own function for graded name ``name`` (as imported, before any learner's
    function was installed in scratchnet.nn)."""
    from . import REFERENCE
    ref = REFERENCE.get(name) or REFERENCE.get(name.replace("_loss", "")) or _REFERENCE_EXTRA.get(name)
    if ref is None:
        raise KeyError(f"no scratchnet function for {name!r}")
    return _original(ref)


def _given(swaps, given, namespace):
    """Put scratchnet's implementation of each name of ``given`` in place of the learner's."""
    made = []
    for g in given:
        if ":" in g:  # a module attribute, e.g. scratchnet.nn.rnn:rnn_step_backward
            module, _, attr = g.partition(":")
            swaps.setattr(importlib.import_module(module), attr, _reference(attr))
            made.append(attr)
        else:         # a name of the learner's namespace
            ref = _reference(g)
            if g in namespace:
                swaps.setitem(namespace, g, ref)
            else:
                namespace[g] = ref
                swaps.undo.append(lambda g=g: namespace.pop(g, None))
            made.append(g)
    return made


def _caller_namespace():
    """The globals of the learner's notebook: the first frame outside this module (and contextlib)."""
    frame = sys._getframe(1)
    while frame is not None and frame.f_globals.get("__name__") in (__name__, "contextlib"):
        frame = frame.f_back
    return frame.f_globals if frame is not None else {}


def grade(check, fn, *args, name=None, given=(), **kwargs):
    """Run ``check(fn, *args, **kwargs)`` as a graded test: returns None, or raises :class:`NotPassed`.

    ``name`` is the part graded (default ``fn.__name__``); scratchnet's implementations of it
    cannot score meanwhile.  ``given`` names the parts it builds on, run on scratchnet's
    implementation for the duration (a learner's global, or ``"module:attr"``).
    """
    __tracebackhide__ = True
    namespace = _caller_namespace()
    name = name or _part_name(fn, namespace)
    where = is_scratchnets(fn, name) if name in SCRATCHNETS else next(
        filter(None, (is_scratchnets(fn, part) for part in SCRATCHNETS)), None)
    if where is not None:
        print(f"{_title(check, kwargs)}\nFAIL {name} is scratchnet's own {where}: it cannot score while "
              f"{name} is graded -- write your own")
        RESULTS[name] = False
        _times.record(name, False)
        raise NotPassed(f"{name}: scratchnet's own {where} cannot score here")
    swaps = _Swaps()
    try:
        made = _given(swaps, given, namespace)
        allowed = {_reference(g.partition(":")[2] or g) for g in given}
        origs = {o: w for o, w in (scratchnets(name) if name in SCRATCHNETS else {}).items() if o not in allowed}
        _install_stand_ins(swaps, origs, name, namespace)
        if made:
            print(f"({name} is graded with scratchnet's {', '.join(dict.fromkeys(made))} in place of yours: "
                  f"a bug there costs its own part only)")

        @functools.wraps(fn)
        def learners(*a, **kw):
            _inside[0] += 1
            try:
                return fn(*a, **kw)
            finally:
                _inside[0] -= 1
        ok = bool(check(learners, *args, **kwargs))
    finally:
        swaps.restore()
    RESULTS[name] = ok  # a failure raises: the last result of a cell is the cell's
    _times.record(name, ok)  # when each check ran, for the course's time table (_times.py)
    if not ok:
        raise NotPassed(f"{name} did not pass {_title(check, kwargs)}: the FAIL and hint lines above say "
                        f"which quantity is wrong and why")
    # nothing returned: a test cell shows the checker's lines only


def _part_name(fn, namespace):
    """The part ``fn`` answers: its name if that is a graded part, else the name the learner's
    namespace binds it to (``rnn_backward = my_bptt``), else its own name."""
    own = getattr(fn, "__name__", None)
    if own in SCRATCHNETS:
        return own
    bound = [k for k, v in namespace.items() if v is fn and k in SCRATCHNETS]
    return bound[0] if bound else (own or "your function")


def _title(check, kwargs):
    extra = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
    return f"{getattr(check, '__name__', 'the check')}" + (f" ({extra})" if extra else "")


def passed(name):
    """Whether every graded test of ``name`` run so far in this kernel passed (False if none ran)."""
    return RESULTS.get(name, False)


def yours_or_scratchnets(fn, name):
    """``fn`` if its graded tests passed in this kernel, else scratchnet's implementation of ``name``."""
    return fn if passed(name) else _reference(name)


@contextlib.contextmanager
def fallbacks(names, namespace=None):
    """Run the block with scratchnet's implementation of each name of ``names`` whose graded
    test has not passed in this kernel put in the learner's namespace (restored afterwards), so
    that one failed part does not stop the cells that use it."""
    namespace = _caller_namespace() if namespace is None else namespace
    swaps = _Swaps()
    try:
        for name in names:
            if passed(name):
                continue
            ref = _reference(name)
            if name == "train":  # scratchnet's loop calls the namespace's train_step, as the learner's would
                def ref(model, opt, stream, steps, _loop=ref):
                    return _loop(model, opt, stream, steps, namespace["train_step"])
            if name in namespace:
                swaps.setitem(namespace, name, ref)
            else:
                namespace[name] = ref
                swaps.undo.append(lambda name=name: namespace.pop(name, None))
            print(f"(scratchnet's {name} runs here in place of yours, which has not passed its test)")
        yield
    finally:
        swaps.restore()


# --------------------------------------------------------------------------- checker lines
def _sci(x):
    if x == 0:
        return "0"
    if not np.isfinite(x):
        return "nan" if np.isnan(x) else "inf"
    m, e = f"{x:.0e}".split("e")
    return f"{m}e{int(e)}"


def _passes(row, tol):
    return bool(row[2]) if len(row) == 3 else isinstance(row[1], float) and row[1] < tol


def _lines(title, rows, hints, tol, verbose, what="rel. error", note=None):
    """rows: [(name, error or message)], or (name, what was measured, passed) for a quantity that is
    not an error (a speed); print the verdict; return whether all passed."""
    ok = all(_passes(r, tol) for r in rows)
    if verbose:
        print(title)
        if note:
            print(note)
        w = max(len(r[0]) for r in rows)
        for r in rows:
            n, e = r[:2]
            if len(r) == 3 or isinstance(e, str):
                print(f"{'PASS' if _passes(r, tol) else 'FAIL'} {n:<{w}}  {e}")
            else:
                print(f"{'PASS' if e < tol else 'FAIL'} {n:<{w}}  {what} {_sci(e)} (needs < {_sci(tol)})")
        for h in dict.fromkeys(hints):
            print(f"hint: {h}")
        if ok:
            print("all right")
    return ok


def _err(got, want):
    try:
        g = np.asarray(got, dtype=np.float64)
    except (TypeError, ValueError):
        return f"is not an array of numbers ({type(got).__name__})"
    if g.shape != np.shape(want):
        return f"has shape {g.shape}, expected {np.shape(want)}"
    if not np.all(np.isfinite(g)):
        return "holds NaN or inf"
    return float(rel_error(g, np.asarray(want, dtype=np.float64))) if np.any(want) or np.any(g) else 0.0


def _safe(title, verbose, body):
    try:
        return body()
    except Exception as e:  # the learner's exception: one line and their own lines of the traceback
        import traceback
        frames = [f for f in traceback.extract_tb(e.__traceback__) if f.filename != __file__]
        where = "".join(traceback.format_list(frames[-2:])).rstrip()
        if verbose:
            print(f"{title}\nFAIL raised {type(e).__name__}: {e}\n{where}")
            if isinstance(e, NotImplementedError):
                print("hint: the stub is still in place: replace `raise NotImplementedError` by your code")
        return False


def _close(got, want, tol=1e-6):
    e = _err(got, want)
    return isinstance(e, float) and e < tol


# --------------------------------------------------------------------------- forward passes
def _rnn_step_variants(x, prev_h, Wx, Wh, b):
    z = x @ Wx + prev_h @ Wh + b
    return {"the ReLU is missing: next_h = max(z, 0), not z": z,
            "the bias b is missing from z = x Wx + prev_h Wh + b": np.maximum(x @ Wx + prev_h @ Wh, 0),
            "prev_h Wh is missing: the step must use the previous state": np.maximum(x @ Wx + b, 0),
            "the ReLU is applied before adding the bias: relu(x Wx + prev_h Wh) + b":
                np.maximum(x @ Wx + prev_h @ Wh, 0) + b}


def _rnn_seq_variants(x, h0, Wx, Wh, b):
    from ..nn.rnn import rnn_forward
    out = {}
    h, _ = rnn_forward(x, np.zeros_like(h0), Wx, Wh, b)
    out["h0 is not used: the first step starts from h0, not from zeros"] = h
    ht, _ = rnn_forward(x, h0, Wx, Wh, b)
    out["h[:, t] holds the state before step t: store next_h, the state after it"] = np.concatenate(
        [h0[:, None], ht[:, :-1]], axis=1)
    hs, prev = [], h0
    for t in range(x.shape[1]):
        hs.append(np.maximum(x[:, t] @ Wx + h0 @ Wh + b, 0))
    out["every step starts from h0: feed each step the previous step's output"] = np.stack(hs, axis=1)
    return out


def check_forward(fn, which, *, seed=0, tol=1e-10, verbose=True, **dims):
    """Check a learner's forward pass against scratchnet's: ``which`` is ``"rnn_step_forward"``,
    ``"rnn_forward"`` or ``"maxpool1d_forward"`` (with ``pool``, ``stride``, ``padding``).

    The output must match; the cache must be scratchnet's layout, which the graded backward
    passes get (checked by running scratchnet's backward on it).
    """
    from . import REFERENCE
    rng = np.random.default_rng(seed)
    if which == "rnn_step_forward":
        d = dict(dict(N=3, D=4, H=5), **dims)
        N, D, H = d["N"], d["D"], d["H"]
        args = [rng.standard_normal(s) for s in [(N, D), (N, H), (D, H), (H, H), (H,)]]
        args[3] *= 0.5
        names, variants = ("next_h",), _rnn_step_variants(*args)
        back = REFERENCE["rnn_step_backward"]
        title = f"check_forward(rnn_step_forward): N={N} D={D} H={H}, seed {seed}"
    elif which == "rnn_forward":
        d = dict(dict(N=2, T=5, D=3, H=4), **dims)
        N, T, D, H = d["N"], d["T"], d["D"], d["H"]
        args = [rng.standard_normal(s) for s in [(N, T, D), (N, H), (D, H), (H, H), (H,)]]
        args[3] *= 0.5
        names, variants = ("h",), _rnn_seq_variants(*args)
        back = REFERENCE["rnn_backward"]
        title = f"check_forward(rnn_forward): N={N} T={T} D={D} H={H}, seed {seed}"
    elif which == "maxpool1d_forward":
        d = dict(dict(N=2, T=9, C=3, pool=3, stride=1, padding="same"), **dims)
        x = rng.integers(0, 4, (d["N"], d["T"], d["C"])).astype(float)  # ties in most windows
        args = [x, d["pool"], d["stride"], d["padding"]]
        names, variants = ("out",), {}
        back = REFERENCE["maxpool1d_backward"]
        title = (f"check_forward(maxpool1d_forward): N={d['N']} T={d['T']} C={d['C']} pool {d['pool']} "
                 f"stride {d['stride']} {d['padding']!r} (with ties), seed {seed}")
    else:
        raise ValueError(f"{which=}: rnn_step_forward, rnn_forward or maxpool1d_forward")
    fwd = REFERENCE[which]

    def body():
        copies = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
        got = fn(*copies)
        if not (isinstance(got, tuple) and len(got) == 2):
            return _lines(title, [(names[0], f"{which} must return two values, ({names[0]}, cache)")], [], tol, verbose)
        out, cache = got
        want, ref_cache = fwd(*args)
        rows, hints = [(names[0], _err(out, want))], []
        if not _close(out, want, tol):
            hints += [h for h, v in variants.items() if _close(out, v, 1e-9)]
        changed = [i for i, (a, c) in enumerate(zip(args, copies)) if isinstance(a, np.ndarray) and not np.array_equal(a, c)]
        if changed:
            hints.append(f"{which} changed its input(s) {changed} in place: work on copies")
        dout = rng.standard_normal(np.shape(want))
        want_b = back(dout, ref_cache)
        want_b = want_b if isinstance(want_b, tuple) else (want_b,)
        try:
            got_b = back(dout, cache)
            got_b = got_b if isinstance(got_b, tuple) else (got_b,)
            e = max(_err(g, w) if isinstance(_err(g, w), float) else np.inf for g, w in zip(got_b, want_b))
        except Exception as ex:  # noqa: BLE001  the cache is not scratchnet's layout
            e = f"scratchnet's backward cannot read it ({type(ex).__name__}: {ex})"
        rows.append(("cache", e if isinstance(e, str) else float(e)))
        if not (isinstance(e, float) and e < tol):
            hints.append({"rnn_step_forward": "the cache must be (x, prev_h, Wx, Wh, next_h), scratchnet's layout: "
                                              "the graded backward passes read it",
                          "rnn_forward": "the cache must be (the list of the T step caches, h0)",
                          "maxpool1d_forward": "the cache must be (argmax, T_pad, left, T): argmax (N, T_out, C) "
                                               "the padded index of each window's first maximum"}[which])
        return _lines(title, rows, hints, tol, verbose, what="error")
    return _safe(title, verbose, body)


# --------------------------------------------------------------------------- conv1d: speed
def conv1d_backward_loops(dout, cache):
    """The timing baseline of :func:`check_conv_speed`: conv1d's backward with loops over n, t, k."""
    x_pad, w, left, T = cache
    N, _, Cin = x_pad.shape
    K, _, Cout = w.shape
    dx_pad, dw, db = np.zeros_like(x_pad), np.zeros_like(w), np.zeros(Cout)
    for n in range(N):
        for t in range(T):
            db += dout[n, t]
            for k in range(K):
                dw[k] += np.outer(x_pad[n, t + k], dout[n, t])
                dx_pad[n, t + k] += w[k] @ dout[n, t]
    return dx_pad[:, left:left + T], dw, db


def check_conv_speed(fn, *, factor=5.0, seed=0, verbose=True):
    """``fn`` must be right and ``factor`` times faster than loops over n, t and k (8 sequences of
    200 frames, 16 channels in, 8 out, K = 3), scratchnet's loops: not the learner's own, so a bug
    in the loops of part 1 costs part 1 only."""
    from . import REFERENCE
    title = f"check_conv_speed: at least {factor:g}x the speed of loops over n, t, k (N=8 T=200 Cin=16 Cout=8 K=3)"
    rng = np.random.default_rng(seed)
    x, w, b = rng.standard_normal((8, 200, 16)), rng.standard_normal((3, 16, 8)), rng.standard_normal(8)
    out, cache = REFERENCE["conv1d_forward"](x, w, b)
    dout = rng.standard_normal(out.shape)

    def timed(f, number):
        best = np.inf
        for _ in range(3):
            t0 = time.perf_counter()
            for _ in range(number):
                f(dout, cache)
            best = min(best, (time.perf_counter() - t0) / number)
        return best

    def body():
        got = fn(dout, cache)
        want = REFERENCE["conv1d_backward"](dout, cache)
        errs = [(n, _err(g, wv)) for n, g, wv in zip(("dx", "dw", "db"), got, want)]
        if not all(isinstance(e, float) and e < TOL for _, e in errs):
            return _lines(title, errs, ["the speed counts for a right backward only: fix the lines above first"],
                          TOL, verbose)
        loops, fast = timed(conv1d_backward_loops, 1), timed(fn, 5)
        speed = loops / fast
        note = f"scratchnet's loops {loops * 1e3:.1f} ms, yours {fast * 1e3:.2f} ms (best of 3)"
        hints = [] if speed >= factor else [
            "a Python loop over the frames is left: loop over the K taps only (each tap is one product "
            "over all N*T frames), or write dx as a full correlation with the flipped kernel"]
        row = ("speed", f"{speed:.1f}x the loops (needs >= {factor:g}x)", speed >= factor)
        return _lines(title, errs + [row], hints, TOL, verbose, note=note)
    return _safe(title, verbose, body)


# --------------------------------------------------------------------------- train_your_own
def reference_train_step(model, opt, X, V, A, gamma=0.05):
    """scratchnet's training step, for the assignment's fallback: forward, discriminative MSE,
    backward, Adam; returns the loss."""
    from .. import losses
    (y1, y2), cache = model.forward(X)
    loss, dy1, dy2 = losses.mse_loss(y1, y2, V, A, gamma=gamma)
    grads, _ = model.backward(dy1, dy2, cache, input_grad=False)
    opt.step(model.params, grads)
    return loss


def reference_train(model, opt, stream, steps, train_step):
    """scratchnet's loop, for the assignment's fallback: epochs 0, 1, ... of ``stream`` until
    ``steps`` steps of ``train_step``; returns the losses."""
    history, epoch = [], 0
    while len(history) < steps:
        for X, V, A in stream.epoch(epoch):
            history.append(train_step(model, opt, X, V, A))
            if len(history) == steps:
                break
        epoch += 1
    return history


def _small_model(arch, seed, dtype="float64", **kw):
    from ..models import Model, make_config
    return Model(make_config(arch=arch, dtype=dtype, seed=seed, **kw))


def check_train_step(fn, *, gamma=0.05, seed=0, arch="drnn-2", verbose=True):
    """``fn(model, opt, X, V, A)`` must move every weight as scratchnet's step does (reference
    backend, float64, Adam) and return its loss; run with scratchnet's losses and backward passes."""
    from .. import losses
    from ..nn import use_backend
    from ..optimizers import Adam
    title = f"check_train_step: {arch}, gamma {gamma}, seed {seed}"
    rng = np.random.default_rng(seed)
    kw = dict(n_bins=6, hidden=5) if arch == "drnn-2" else dict(n_bins=4, hidden=3, layers=2)
    X, V, A = (rng.uniform(0.1, 1, (2, 7, kw["n_bins"])) for _ in range(3))

    def body():
        mine, theirs, start = _small_model(arch, seed, **kw), _small_model(arch, seed, **kw), _small_model(arch, seed, **kw)
        with use_backend("reference"):
            loss_mine = fn(mine, Adam(lr=1e-2), X.copy(), V.copy(), A.copy())
            (y1, y2), cache = theirs.forward(X)
            loss_theirs, d1, d2 = losses.mse_loss(y1, y2, V, A, gamma=gamma)
            Adam(lr=1e-2).step(theirs.params, theirs.backward(d1, d2, cache, input_grad=False)[0])
        try:
            e_loss = abs(float(loss_mine) - loss_theirs) / abs(loss_theirs)
        except (TypeError, ValueError):
            e_loss = f"train_step must return the loss, a number (got {type(loss_mine).__name__})"
        rows, hints = [("loss", e_loss)], []
        if isinstance(e_loss, float) and e_loss > 1e-9:
            if abs(float(loss_mine) - losses.mse_loss(y1, y2, V, A, gamma=0.0)[0]) < 1e-9 * abs(loss_theirs):
                hints.append("the loss is the one with gamma = 0: pass gamma=GAMMA to mse_loss")
            elif abs(float(loss_mine) - losses.mse_loss(y1, y2, A, V, gamma=gamma)[0]) < 1e-9 * abs(loss_theirs):
                hints.append("the targets are swapped: y1 estimates the vocals V, y2 the accompaniment A")
        moved = [n for n in theirs.params if not np.array_equal(mine.params[n], start.params[n])]
        wrong = [n for n in theirs.params if not _close(mine.params[n], theirs.params[n], 1e-7)]
        rows.append(("weights", f"all {len(theirs.params)} tensors moved as scratchnet's step moves them", True)
                    if not wrong else ("weights", f"{len(wrong)} of {len(theirs.params)} tensors not as "
                                                  f"scratchnet's step moves them ({', '.join(wrong[:3])}...)"))
        if wrong and not moved:
            hints.append("no weight moved: call opt.step(model.params, grads) with the grads of model.backward")
        elif wrong:
            hints.append("the weights moved differently: the step must use model.backward's gradients of the loss "
                         "it returns, once (model.backward(dy1, dy2, cache, input_grad=False)[0])")
        return _lines(title, rows, hints, 1e-9, verbose)
    return _safe(title, verbose, body)


class _Recorder:
    def __init__(self):
        self.calls = []

    def __call__(self, model, opt, X, V, A):
        self.calls.append(X[0, 0, 0])
        return float(len(self.calls)) / 10


class _Stream:
    """Epoch e holds ``n`` batches; batch b of epoch e is told by X[0, 0, 0] = 100 e + b."""

    def __init__(self, n):
        self.n, self.epochs = n, []

    def epoch(self, epoch=0):
        self.epochs.append(epoch)
        for b in range(self.n):
            X = np.full((1, 2, 3), 100.0 * epoch + b)
            yield X, X, X


def check_train_loop(fn, *, steps=7, batches=3, verbose=True):
    """``fn(model, opt, stream, steps)`` must call ``train_step`` on the batches of epochs 0, 1, ...
    of ``stream`` in order, exactly ``steps`` times, and return the ``steps`` losses; it is run
    with a recording train_step in place of the learner's (so a wrong train_step costs its part)."""
    title = f"check_train_loop: {steps} steps on a stream of {batches} batches per epoch"
    namespace = _caller_namespace()

    def body():
        rec, stream = _Recorder(), _Stream(batches)
        had = "train_step" in namespace
        old = namespace.get("train_step")
        namespace["train_step"] = rec
        try:
            history = fn(None, None, stream, steps)
        finally:
            if had:
                namespace["train_step"] = old
            else:
                namespace.pop("train_step", None)
        want = [100.0 * (i // batches) + i % batches for i in range(steps)]
        got = [float(c) for c in rec.calls]
        rows, hints = [], []
        if got == want:
            rows.append(("batches", f"{steps} batches in order (epoch 0's {batches}, then epoch 1's ...)", True))
        else:
            rows.append(("batches", f"train_step got {len(got)} batches, expected {steps} (epoch 0's {batches}, then epoch 1's ...)"))
            if len(got) != steps:
                hints.append(f"train_step ran {len(got)} times: stop after exactly `steps` = {steps} steps, "
                             f"going on to the next epoch when one ends")
            if all(g < 100 for g in got) and len(got) > batches:
                hints.append("every epoch gave epoch 0's batches: call stream.epoch(epoch) with the epoch number")
        try:
            h = [float(v) for v in history]
            ok = h == [float(i + 1) / 10 for i in range(len(rec.calls))]
        except TypeError:
            ok = False
        rows.append(("losses", "the losses train_step returned, in order", True) if ok else
                    ("losses", "the loop must return the list of the losses train_step returned, in order"))
        return _lines(title, rows, hints, 1e-9, verbose, what="error")
    return _safe(title, verbose, body)


def reference_separate(model, mixture):
    """scratchnet's separation of ``mixture`` with ``model`` (the assignment's recipe)."""
    from ..signal import istft, stft
    S = stft(mixture)
    X = np.abs(S).T.astype(np.float32)
    (y1, _), _ = model.forward(X[None])
    gain = np.where(X > 0, y1[0] / np.where(X > 0, X, 1), 0)
    vocals = istft(S * gain.T, length=mixture.size)
    return vocals, mixture - vocals


def check_separate(fn, *, seed=0, seconds=1.5, verbose=True):
    """``fn(model, mixture) -> (vocals, accompaniment)`` against scratchnet's recipe, on a small
    untrained model of its own (so that the training does not count here)."""
    from ..signal import istft, stft
    from ..synthetic import synth_song
    title = f"check_separate: a small DRNN-2, a {seconds:g} s synthetic song (seed {seed})"
    model = _small_model("drnn-2", seed, dtype="float32", hidden=8)
    mixture = synth_song(seconds, seed=seed)[0].astype(np.float64)

    def body():
        got = fn(model, mixture.copy())
        if not (isinstance(got, tuple) and len(got) == 2):
            return _lines(title, [("output", "separate must return (vocals, accompaniment)")], [], 1e-5, verbose)
        want = reference_separate(model, mixture)
        rows = [("vocals", _err(got[0], want[0])), ("accompaniment", _err(got[1], want[1]))]
        hints = []
        if np.shape(got[0]) != mixture.shape:
            hints.append(f"vocals must have the mixture's length, {mixture.size} samples: istft(..., length=mixture.size)")
        S = stft(mixture)
        X = np.abs(S).T.astype(np.float32)
        (y1, _), _ = model.forward(X[None])
        if _close(got[0], istft(y1[0].T.astype(np.complex128), length=mixture.size), 1e-4):
            hints.append("the vocals have no phase: apply the gain y1 / |X| to the complex STFT S, which keeps "
                         "the mixture's phase, not istft of the magnitudes y1")
        if _close(got[0], istft(S * y1[0].T, length=mixture.size), 1e-4):
            hints.append("y1 is a magnitude estimate, not a gain: the gain is y1 / |X| (0 where |X| = 0)")
        if np.shape(got[1]) == mixture.shape and not _close(np.asarray(got[0]) + got[1], mixture, 1e-5):
            hints.append("vocals + accompaniment must give the mixture: the accompaniment is mixture - vocals")
        return _lines(title, rows, hints, 1e-5, verbose)
    return _safe(title, verbose, body)


#: graded names whose scratchnet implementation is not in REFERENCE
_REFERENCE_EXTRA = {"train_step": reference_train_step, "train": reference_train, "separate": reference_separate,
                    "conv1d_backward_loops": conv1d_backward_loops}
