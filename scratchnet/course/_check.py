"""The machinery every checker shares: calling the learner's function on copies, judging its
gradients against finite differences and the reference, the verdict lines, and the diagnosis.

The references are scratchnet's readable functions, taken when this module is imported, so a
learner who installs their own function in :mod:`scratchnet.nn` (to train a model with it) is
still checked against scratchnet's.

Copies.  The learner's function gets deep copies of its inputs (the upstream gradient, the
cache); the reference and the finite differences run on the pristine originals.  A function
that changed an input in place is told so in a ``note:`` line, and its returned arrays are
judged as they are: a right gradient computed with ``g = dh[:, t]; g += dprev`` passes.

Diagnosis.  A hint is printed only when an *explanation reproduces the learner's array*, to
:data:`MATCH` relative error: no hint is better than a wrong one.  :func:`explain` is
independent of the layer; it tries, for each wrong tensor, in this order:

1. the checker's :class:`Hypothesis` list: what a named bug returns, computed from the
   reference's own parts (the carried gradient left out, a derivative written 1 - s^2, the
   state of the neighbouring time step, another gate's value ...) -- first those that
   reproduce *every* tensor they predict, the one that covers most first (two that give the
   same numbers at the checker's sizes are both named);
2. the reference's additive terms (:class:`Terms`): the reference with one term (or a group
   of terms) missing, doubled or negated, or with one term swapped for a neighbour; and a
   least-squares fit on the terms, accepted when its residual is below MATCH and its
   coefficients are integers (a term missing: 0, doubled: 2, negated: -1);
3. a hypothesis that reproduces this tensor but not all the others it predicts (a derivative
   left out of one product only), unless it predicts zeros or is marked whole-loop;
4. algebraic forms of the reference: zeros, a constant factor (named: 2, 1/2, -1, or a
   product of the sizes such as 1/(N*T) for a mean where a sum belongs; a one-number array
   only by a named factor), axes transposed, an axis reversed or shifted by one, an axis not
   summed or summed over the wrong axes, a padded axis not cropped.

The engine knows nothing of the layers: a checker hands it a :class:`Case` (names, the
learner's arrays, the reference's) and its lists of hypotheses and terms, so a new checker
(a 2-D convolution's) gets the algebraic forms and the least-squares fit for free and adds
what its own bugs return.

:func:`derivative_hypotheses` builds the derivative family generically: given a function that
recomputes the backward with one local derivative replaced, it tries the derivatives learners
write by mistake (1 - s^2 for a sigmoid, 1 - t for a tanh, the mask left out of a ReLU ...).
"""
import itertools
import re
import traceback
from fractions import Fraction

import numpy as np

from .. import losses as _losses
from ..gradcheck import numerical_gradient, rel_error
from ..nn import conv1d as _conv1d
from ..nn import conv2d as _conv2d
from ..nn import gru as _gru
from ..nn import lstm as _lstm
from ..nn import mask as _mask
from ..nn import maxpool1d as _maxpool1d
from ..nn import rnn as _rnn

TOL = 1e-7  # a right gradient gives ~1e-10 in float64 with h = 1e-6; a wrong one 1e-3 or more
F32_TOL = 1e-5  # a gradient returned in float32 is judged to float32's precision
H_STEP = 1e-6
MATCH = 1e-6  # an explanation must reproduce the learner's array to this relative error

#: scratchnet's readable functions, taken now: what every learner's function is compared with
REFERENCE = {name: getattr(module, name) for module, names in [
    (_rnn, ("rnn_step_forward", "rnn_step_backward", "rnn_forward", "rnn_backward")),
    (_gru, ("gru_step_forward", "gru_step_backward")),
    (_lstm, ("lstm_step_forward", "lstm_step_backward")),
    (_mask, ("mask_forward", "mask_backward")),
    (_conv1d, ("conv1d_forward", "conv1d_backward")),
    (_conv2d, ("conv2d_forward", "conv2d_backward")),
    (_maxpool1d, ("maxpool1d_forward", "maxpool1d_backward"))] for name in names}
REFERENCE.update(mse=_losses.mse_loss, kl=_losses.kl_loss, **{"is": _losses.is_loss})


def sci(x):
    """3e-11, 1e-7: one digit, no padded exponent."""
    if x == 0:
        return "0"
    return "nan" if not np.isfinite(x) else re.sub(r"e([+-])0*(\d)", r"e\1\2", f"{x:.0e}").replace("e+", "e")


# --------------------------------------------------------------------------- results
class TensorResult:
    """One gradient's verdict: ``name``, ``error`` (inf: wrong shape, nan: NaN), ``tol``, ``hint``."""

    def __init__(self, name, error, tol, hint=None):
        self.name, self.error, self.tol, self.hint = name, error, tol, hint

    @property
    def passed(self):
        return bool(self.error < self.tol)  # NaN fails

    def line(self, width):
        what = "wrong shape" if self.error == np.inf else f"rel. error {sci(self.error)}"
        why = ": float32" if self.tol > TOL and self.tol == F32_TOL else ""
        return f"{'PASS' if self.passed else 'FAIL'} {self.name:<{width}}  {what} (needs < {sci(self.tol)}{why})"

    def __repr__(self):
        return f"TensorResult({self.name!r}, error={self.error:.3g}, passed={self.passed}, hint={self.hint!r})"


class CheckResult:
    """What a checker found; reads as a bool (``assert check_bptt(fn)``), shows as ``True``/``False``.

    ``tensors`` {name: :class:`TensorResult`} (also ``result["dWh"]``), ``hints`` and ``notes``
    (the lines printed after ``hint:`` and ``note:``), ``failure`` (the learner's exception, or
    None), ``title``; ``report()`` is the text the checker prints.
    """

    def __init__(self, title, tensors=(), hints=(), notes=(), failure=None):
        self.title, self.failure = title, failure
        self.tensors = {t.name: t for t in tensors}
        self.hints, self.notes = list(hints), list(notes)

    @property
    def passed(self):
        return self.failure is None and bool(self.tensors) and all(t.passed for t in self.tensors.values())

    def __bool__(self):
        return self.passed

    def __eq__(self, other):
        if isinstance(other, CheckResult):
            return self.passed == other.passed
        if isinstance(other, (bool, np.bool_)):
            return self.passed == bool(other)
        return NotImplemented

    def __hash__(self):
        return hash(self.passed)

    def __repr__(self):
        return repr(self.passed)

    def __getitem__(self, name):
        return self.tensors[name]

    def report(self):
        lines = [self.title]
        if self.failure is not None:
            lines.append(f"FAIL {self.failure}")
        if self.tensors:
            w = max(len(n) for n in self.tensors)
            lines += [t.line(w) for t in self.tensors.values()]
        lines += [f"note: {n}" for n in self.notes]
        lines += [f"hint: {h}" for h in self.hints]
        if self.passed:
            lines.append("all gradients right")
        return "\n".join(lines)

    __str__ = __repr__  # print(check_bptt(fn, verbose=False)) prints True or False, as it did


# --------------------------------------------------------------------------- calling the learner
class Failed(Exception):
    """The learner's function raised, or returned the wrong number of arrays."""

    def __init__(self, message, exc_type=None):
        super().__init__(message)
        self.exc_type = exc_type


def call(fn, *args, n=None, **kw):
    try:
        out = fn(*args, **kw)
    except Exception as e:  # the learner's bug: show it, do not crash the checker
        frames = [f for f in traceback.extract_tb(e.__traceback__) if f.filename != __file__]
        where = "".join(traceback.format_list(frames[-2:])).rstrip()  # the learner's lines only
        raise Failed(f"{fname(fn)} raised {type(e).__name__}: {e}\n{where}", type(e)) from None
    if n is not None:
        out = (out,) if n == 1 and not isinstance(out, (tuple, list)) else out
        if not isinstance(out, (tuple, list)) or len(out) != n:
            got = len(out) if isinstance(out, (tuple, list)) else 1
            raise Failed(f"{fname(fn)} returned {got} value(s), expected {n}")
    return out


def fname(fn):
    return getattr(fn, "__name__", "the function")


def snapshot(obj):
    """A deep copy of nested tuples, lists and dicts of arrays (other leaves as they are)."""
    if isinstance(obj, np.ndarray):
        return obj.copy()
    if isinstance(obj, (tuple, list)):
        return type(obj)(snapshot(o) for o in obj)
    if isinstance(obj, dict):
        return {k: snapshot(v) for k, v in obj.items()}
    return obj


def changed(before, after, path):
    """The paths (``cache[0][3]``) at which ``after`` no longer equals ``before``."""
    if isinstance(before, np.ndarray):
        if not isinstance(after, np.ndarray) or after.shape != before.shape or after.dtype != before.dtype:
            return [path]
        try:
            same = np.array_equal(after, before, equal_nan=True)
        except TypeError:
            same = np.array_equal(after, before)
        return [] if same else [path]
    if isinstance(before, (tuple, list)):
        if type(after) is not type(before) or len(after) != len(before):
            return [path]
        return [p for i, (b, a) in enumerate(zip(before, after)) for p in changed(b, a, f"{path}[{i}]")]
    if isinstance(before, dict):
        if not isinstance(after, dict) or after.keys() != before.keys():
            return [path]
        return [p for k in before for p in changed(before[k], after[k], f"{path}[{k!r}]")]
    try:
        return [] if bool(before == after) else [path]
    except Exception:
        return []


def call_learner(fn, args, arg_names, n, **kw):
    """``fn(*copies of args)``: its outputs and a note per input it changed in place."""
    given = [snapshot(a) for a in args]
    out = call(fn, *given, n=n, **kw)
    notes = []
    for name, before, after in zip(arg_names, args, given):
        paths = changed(before, after, name)
        if not paths:
            continue
        if paths == [name]:
            notes.append(f"{fname(fn)} changed {name} in place: copy it before += or *= "
                         f"({name} = {name}.copy()), as the caller may still need it")
        else:
            where = ", ".join(paths[:3]) + (", ..." if len(paths) > 3 else "")
            notes.append(f"{fname(fn)} changed its {name} in place ({where}): copy an array before "
                         f"+= or *=, as the caller may still need it")
    return out, notes


# --------------------------------------------------------------------------- judging
def as_array(g):
    return np.zeros(0) if g is None else np.asarray(g)


def tolerance(g, tol):
    """The tolerance for a returned array: float32's precision when it is float32 (or less)."""
    g = as_array(g)
    return max(tol, F32_TOL) if g.dtype.kind == "f" and g.dtype.itemsize <= 4 else tol


def errors(names, got, *wants):
    """{name: error}: the largest rel_error of got against each of wants; inf for a bad shape."""
    errs = {}
    for i, name in enumerate(names):
        try:
            g = as_array(got[i]).astype(np.float64)
        except (TypeError, ValueError):
            g = np.zeros(0)
        if g.shape != np.shape(wants[0][i]):
            errs[name] = np.inf
            continue
        with np.errstate(all="ignore"):
            e = max(rel_error(g, w[i]) for w in wants)
        errs[name] = np.nan if not np.isfinite(e) else e  # NaN in the learner's gradient
    return errs


def passes(errs, tol):
    return all(e < tol for e in errs.values())  # NaN fails


class Case:
    """One run of the learner's function: inputs drawn, outputs judged.

    ``names``, ``got`` (the learner's arrays), ``ref`` (the reference's), ``errs``, ``tols``,
    ``notes`` (in-place changes) and the reference's parts in ``parts`` (for the diagnosis).
    """

    def __init__(self, names, got, ref, wants, tol, notes=(), **parts):
        self.names, self.got, self.ref, self.notes, self.parts = tuple(names), list(got), list(ref), list(notes), parts
        self.tols = {n: tolerance(g, tol) for n, g in zip(self.names, self.got)}
        self.errs = errors(self.names, self.got, *wants)
        # a float32 gradient is judged against the reference only: a finite difference of a
        # float32 function (the learner's loss) at h = 1e-6 is noise
        for i, n in enumerate(self.names):
            if self.tols[n] > tol and self.errs[n] != np.inf:
                self.errs[n] = errors([n], [self.got[i]], [self.ref[i]])[n]

    @property
    def failing(self):
        return [n for n in self.names if not self.errs[n] < self.tols[n]]

    @property
    def ok(self):
        return not self.failing

    def get(self, name):
        return as_array(self.got[self.names.index(name)])

    def want(self, name):
        return np.asarray(self.ref[self.names.index(name)])

    def tensors(self, hints=None):
        hints = hints or {}
        return [TensorResult(n, self.errs[n], self.tols[n], hints.get(n)) for n in self.names]


def finish(title, case, hints, verbose, tensor_hints=None, extra_tensors=()):
    """The :class:`CheckResult` of a case and its hints; printed when ``verbose``."""
    tensors = case.tensors(tensor_hints) + list(extra_tensors)
    result = CheckResult(title, tensors, dict.fromkeys(hints), dict.fromkeys(case.notes))
    if verbose:
        print(result.report())
    return result


def run(title, verbose, body, retry=None):
    """Run a checker's body; a learner's exception becomes one FAIL line and the traceback.

    ``retry(failed)``: when the learner's function raised, the checker may run it again under a
    condition where it runs (a square matrix where shapes did not fit) and return hints.
    """
    try:
        return body()
    except Failed as e:
        hints = []
        if "NotImplementedError" in str(e):
            hints.append("the stub is still in place: replace `raise NotImplementedError` by your code")
        elif retry is not None:
            try:
                hints += retry(e) or []
            except Failed:
                pass
        result = CheckResult(title, hints=hints, failure=str(e))
        if verbose:
            print(result.report())
        return result


def sizes(defaults, given):
    unknown = set(given) - set(defaults)
    if unknown:
        raise TypeError(f"unknown size(s) {', '.join(sorted(unknown))}: choose among {', '.join(defaults)}")
    return {**defaults, **given}


def numeric(out_fn, arrays, dout):
    """Centred differences of sum(out_fn() * dout) with respect to every array of ``arrays``."""
    return [numerical_gradient(out_fn, a, dout, h=H_STEP) for a in arrays]


def square_rerun(case, found, hints, rerun, words):
    """Tensors of the wrong shape, explained again where the weights are square.

    ``rerun()`` runs the learner's function with sizes at which a (D, H) mix-up still runs
    (``words``: "D = H = 5") and returns its (found, hints); a wrong-shaped tensor that it
    explains gets that hint, prefixed with the condition.
    """
    wrong = [n for n in case.failing if case.errs[n] == np.inf]
    if not wrong:
        return found, hints
    try:
        sq_found, _ = rerun()
    except Failed:
        return found, hints
    for n in wrong:
        if n in sq_found and "has shape" not in sq_found[n]:
            old = found.get(n)
            found[n] = f"with {words}, where the shapes fit, {n}: {sq_found[n]}"
            hints = [h for h in hints if not (old and h.endswith(old) and h.startswith(n + ":"))] + [found[n]]
    return found, hints


def shape_error(failed):
    """Did the learner's function raise because two arrays' shapes did not fit?"""
    return failed.exc_type is ValueError and any(w in str(failed) for w in ("matmul", "shape", "broadcast", "align"))


# --------------------------------------------------------------------------- the diagnosis
def matches(g, want):
    """Does ``want`` reproduce the learner's array ``g`` (same shape, rel. error < MATCH)?"""
    g, want = as_array(g), np.asarray(want)
    if g.shape != want.shape or g.dtype == object or not np.all(np.isfinite(want)):
        return False
    with np.errstate(all="ignore"):
        return bool(rel_error(g.astype(np.float64), want) < MATCH)


class Hypothesis:
    """A named bug and what it returns: ``hint`` and {tensor name: array} for some tensors.

    It explains a wrong tensor when its array there reproduces the learner's (to MATCH).
    ``partial``: whether it may explain some of the tensors it predicts while the others are
    right (a derivative written wrong in one product only); a bug of the whole loop (the carry
    left out) explains nothing unless it reproduces every tensor it predicts.
    """

    def __init__(self, hint, arrays, partial=True):
        self.hint, self.arrays, self.partial = hint, dict(arrays), partial

    @classmethod
    def of(cls, hint, names, outputs, only=None, partial=True):
        """A hypothesis from a whole backward's outputs (a tuple in the order of ``names``)."""
        return cls(hint, {n: o for n, o in zip(names, outputs) if only is None or n in only}, partial)


class Terms:
    """The additive terms of a reference formula: ``sum(parts) == reference``.

    ``parts`` [(label, array)], ``groups`` {description: [labels]} (terms that a bug drops or
    flips together), ``swaps`` [(label, alternative array, hint)]: the term ``label`` computed
    with one factor swapped for a neighbour.  ``formula`` names the sum in the hints
    (``"x_t^T dz_t"``); ``why`` adds a sentence after a term's hint.
    """

    def __init__(self, parts, groups=None, swaps=(), formula=None, why=None):
        self.parts, self.groups, self.swaps = list(parts), dict(groups or {}), list(swaps)
        self.formula, self.why = formula, why or {}


def _labels(labels):
    """'step 0, step 1, step 2' -> 'steps 0-2'; other labels joined by commas."""
    m = [re.fullmatch(r"(.*?)(\d+)", lab) for lab in labels]
    if labels and all(m) and len({x.group(1) for x in m}) == 1:
        prefix, nums = m[0].group(1).strip(), sorted(int(x.group(2)) for x in m)
        runs, start = [], nums[0]
        for a, b in zip(nums, nums[1:] + [None]):
            if b != a + 1:
                runs.append(f"{start}" if start == a else f"{start}-{a}")
                start = b
        plural = prefix + ("s" if len(nums) > 1 and prefix else "")
        return f"{plural} {', '.join(runs)}".strip()
    return ", ".join(labels)


_COEF_WORDS = {0: "not at all", 1: "once", 2: "twice", -1: "with the wrong sign", 3: "three times"}


def _terms_explain(name, g, terms):
    """A hint when the learner's ``g`` is the reference's terms with integer coefficients."""
    arrays = [np.asarray(a, dtype=np.float64) for _, a in terms.parts]
    labels = [lab for lab, _ in terms.parts]
    full = sum(arrays)
    formula = f" ({name} = sum of {terms.formula})" if terms.formula else ""
    single = [(lab, [lab]) for lab in labels] if 2 <= len(labels) <= 12 else []
    for desc, members in list(terms.groups.items()) + single:
        part = sum(arrays[labels.index(m)] for m in members)
        if not np.any(part):
            continue
        for c, word in ((0, "is missing"), (-1, "has the wrong sign"), (2, "is counted twice")):
            if matches(g, full + (c - 1) * part):
                why = terms.why.get(desc, "")
                return f"{desc} {word}{formula}" + (f": {why}" if why else "")
    for lab, alt, hint in terms.swaps:
        if matches(g, full - arrays[labels.index(lab)] + alt):
            return hint
    g = as_array(g).astype(np.float64)
    if g.shape != full.shape or len(arrays) < 2 or g.size <= len(arrays) + 1 or not np.all(np.isfinite(g)):
        return None
    A = np.stack([a.ravel() for a in arrays], axis=1)
    coef, _, rank, _ = np.linalg.lstsq(A, g.ravel(), rcond=None)
    if rank < len(arrays):
        return None  # the terms are not independent here: their coefficients mean nothing
    near = np.round(coef)
    if (np.abs(coef - near).max() > 1e-6 or not matches(g, A @ near) or np.all(near == 1)
            or not set(near.astype(int)) <= set(_COEF_WORDS)):
        return None
    by = {}
    for lab, c in zip(labels, near.astype(int)):
        by.setdefault(c, []).append(lab)
    what = "; ".join(f"{_labels(labs)} {_COEF_WORDS[c]}" for c, labs in sorted(by.items(), key=lambda kv: -kv[0]))
    return f"it holds the terms of {what}{formula}"


def _size_constants(dims):
    """{value: label} for 2, 1/2 and the products of the sizes and their inverses."""
    out = {}
    items = [(k, v) for k, v in (dims or {}).items() if isinstance(v, (int, np.integer)) and v > 1]
    for r in range(1, len(items) + 1):
        for combo in itertools.combinations(items, r):
            p = int(np.prod([v for _, v in combo]))
            lab = "*".join(k for k, _ in combo)
            out.setdefault(Fraction(p), []).append(f"{lab} = {p}")
            out.setdefault(Fraction(1, p), []).append(f"1/{lab if r == 1 else '(' + lab + ')'} = 1/{p}")
    return out


def _named(c, dims, constants):
    """Is ``c`` one of the constants a bug makes (a one-number array fits any factor, so only these)?"""
    known = [float(k) for k in (constants or {})] + [-1.0, 2.0, 0.5] + [float(f) for f in _size_constants(dims)]
    return any(abs(abs(c) - abs(k)) <= 1e-6 * max(1, abs(k)) for k in known)


def _name_constant(c, dims, constants):
    """The words for a factor ``c``: the checker's own words first, then 2, 1/2, the sizes."""
    words = [w for k, w in (constants or {}).items() if abs(k - c) <= 1e-6 * max(1, abs(c))]
    fr = Fraction(c).limit_denominator(1000)
    if abs(float(fr) - c) > 1e-6 * max(1, abs(c)):
        return f"{c:.4g} times the right value" + (": " + " -- or ".join(words) if words else "")
    if words:
        return f"{fr} times the right value: " + " -- or ".join(words)
    if fr == -1:
        return "the right value with the wrong sign"
    sign, mag = ("-" if fr < 0 else ""), abs(fr)
    sized = _size_constants(dims).get(mag, [])
    text = f"{sign}{mag} times the right value" + (f" ({' or '.join(sized)})" if sized else "")
    if sign:
        text += ", with the wrong sign"
    return text + (": divided once too often (a mean where a sum belongs?)" if mag < 1 else
                   ": a factor too many, or a division missing?")


def _axis_name(axes, name, k, ndim, size=None):
    """'axis 1 (time)' from ``axes[name]``: a tuple of labels, or a list of them (one per ndim)."""
    labels = (axes or {}).get(name) or ()
    for lab in (labels if labels and isinstance(labels[0], (tuple, list)) else [labels]):
        if len(lab) == ndim:
            return f"axis {k} ({lab[k]})"
    return f"axis {k}" if size is None else f"axis {k} (size {size})"


def generic_explain(name, g, r, dims=None, axes=None, constants=None, zero_hint=None):
    """Algebraic forms of the reference ``r`` that reproduce the learner's ``g``; None if none."""
    g, r = as_array(g), np.asarray(r, dtype=np.float64)
    if g.dtype == object:
        return None
    g = g.astype(np.float64)
    if g.shape == r.shape:
        if not np.all(np.isfinite(g)):
            bad = int(np.sum(~np.isfinite(g)))
            return f"it holds NaN or inf ({bad} of {g.size} entries): a division by zero or the log of zero?"
        if not np.any(g) and np.any(r):
            return zero_hint or "it is all zeros: was it computed, or only initialised?"
        if np.any(r):
            c = float(np.vdot(g, r) / np.vdot(r, r))
            if abs(c - 1) > 1e-6 and c != 0 and matches(g, c * r) and (r.size > 1 or _named(c, dims, constants)):
                return f"it is {_name_constant(c, dims, constants)}"
        for perm in itertools.permutations(range(r.ndim)):
            if perm != tuple(range(r.ndim)) and r.transpose(perm).shape == g.shape and matches(g, r.transpose(perm)):
                return ("it is transposed: for z = a W the gradient of W is a^T dz, not dz^T a" if r.ndim == 2
                        else f"its axes are the reference's in the order {perm}")
        for k in range(r.ndim):
            if r.shape[k] > 1 and matches(g, np.flip(r, k)):
                return f"it is reversed along {_axis_name(axes, name, k, r.ndim)}"
        for k in range(r.ndim):
            for s in (1, -1, 2, -2, 3, -3):
                if r.shape[k] <= 2 * abs(s):
                    continue
                a, b = [slice(None)] * r.ndim, [slice(None)] * r.ndim
                a[k], b[k] = (slice(s, None), slice(None, -s)) if s > 0 else (slice(None, s), slice(-s, None))
                if matches(g[tuple(a)], r[tuple(b)]):
                    return (f"it is shifted by {abs(s)} along {_axis_name(axes, name, k, r.ndim)}: entry i holds "
                            f"entry i{'-' if s > 0 else '+'}{abs(s)} of the right one")
        return None
    shape = f"it has shape {g.shape}, expected {r.shape}"
    for perm in itertools.permutations(range(r.ndim)):
        if r.transpose(perm).shape == g.shape and matches(g, r.transpose(perm)):
            return (f"{shape}: it is the transpose -- for z = a W the gradient of W is a^T dz, not dz^T a"
                    if r.ndim == 2 else f"{shape}: its axes are the reference's in the order {perm}")
    if g.ndim > r.ndim:
        for extra in itertools.combinations(range(g.ndim), g.ndim - r.ndim):
            if g.sum(axis=extra).shape == r.shape and matches(g.sum(axis=extra), r):
                where = ", ".join(_axis_name(axes, name, k, g.ndim, g.shape[k]) for k in extra)
                return (f"{shape}: its sum over {where} is right -- sum over {'it' if len(extra) == 1 else 'them'}, "
                        f"as the parameter is shared by every row")
    if g.ndim < r.ndim:
        for extra in itertools.combinations(range(r.ndim), r.ndim - g.ndim):
            if matches(g, r.sum(axis=extra)):
                where = ", ".join(_axis_name(axes, name, k, r.ndim) for k in extra)
                return f"{shape}: it is the right one summed over {where}, which the right one keeps"
    if g.ndim == r.ndim and sum(a != b for a, b in zip(g.shape, r.shape)) == 1:
        k = next(i for i, (a, b) in enumerate(zip(g.shape, r.shape)) if a != b)
        if g.shape[k] > r.shape[k]:
            for o in range(g.shape[k] - r.shape[k] + 1):
                if matches(np.take(g, range(o, o + r.shape[k]), axis=k), r):
                    return (f"{shape}: entries {o}..{o + r.shape[k] - 1} along {_axis_name(axes, name, k, r.ndim)} are "
                            f"right -- drop the padding ({o} before, {g.shape[k] - r.shape[k] - o} after)")
    return f"{shape}: a gradient has the shape of what it is the gradient of"


def _reduction_explain(name, g, r, full, words, summed, axes):
    """``g`` is ``full`` summed over other axes than the reference's ``summed``."""
    g = as_array(g).astype(np.float64)
    labels = lambda ks: ", ".join(_axis_name(axes, name + "/full", k, full.ndim, full.shape[k]) for k in ks)  # noqa: E731
    for r_ in range(0, full.ndim + 1):
        for ks in itertools.combinations(range(full.ndim), r_):
            if ks != tuple(summed) and np.shape(full.sum(axis=ks)) == g.shape and matches(g, full.sum(axis=ks)):
                what = f"{words} summed over {labels(ks)}" if ks else f"{words} itself, not summed"
                return f"it has shape {g.shape}, expected {r.shape}: it is {what}; {name} sums {words} over {labels(summed)}"
    return None


def explain(case, hypotheses=(), terms=None, dims=None, axes=None, constants=None, zero_hints=None,
            unreduced=None):
    """Hints for the wrong tensors of ``case``: ({tensor: hint}, [hint lines]).

    Each wrong tensor gets the first explanation that reproduces it: a hypothesis that
    reproduces every tensor it predicts (the one covering most first; two that give the same
    numbers are both named), the terms, a hypothesis that reproduces this tensor only, the
    algebraic forms.  The lines group the tensors that one explanation covers.
    ``unreduced`` {tensor: (array, words, axes)}: what the reference sums over ``axes`` (dz for
    db), for a learner's sum over other axes.
    """
    found, claimed = {}, {}
    failing = case.failing
    # a hypothesis that reproduces every tensor it predicts comes first, the one covering most first;
    # one that reproduces some tensors but not others only explains a tensor it predicts non-zero
    scored = []
    for order, h in enumerate(hypotheses):
        hits = [n for n in h.arrays if n in case.names and matches(case.get(n), h.arrays[n])]
        explained = [n for n in failing if n in hits]
        if explained and (h.partial or len(hits) == len(h.arrays)):
            scored.append((len(hits) < len(h.arrays), -len(explained), order, h, explained))
    ranked = sorted(scored, key=lambda s: s[:3])
    partly = {}
    for partial, minus, _, h, explained in ranked:
        for n in explained:
            if partial:
                if np.any(h.arrays[n]):
                    partly.setdefault(n, h.hint)
                continue
            if n not in claimed:
                claimed[n] = h.hint
                # another bug that gives the very same numbers here: say both, and that they agree
                twins = [o.hint for p, m, _, o, e in ranked if o is not h and (p, m) == (partial, minus)
                         and e == explained and o.hint != h.hint]
                if twins and n == explained[0]:
                    for t in explained:
                        claimed[t] = h.hint + "".join(f" -- or (the same numbers here): {o}"
                                                      for o in dict.fromkeys(twins[:2]))
    for name in failing:
        g, r = case.get(name), case.want(name)
        hint = claimed.get(name)
        if hint is None and terms and name in terms:
            hint = _terms_explain(name, g, terms[name])
        if hint is None:
            hint = partly.get(name)
        if hint is None and unreduced and name in unreduced and as_array(g).shape != r.shape:
            hint = _reduction_explain(name, g, r, *unreduced[name], axes)
        if hint is None:
            hint = generic_explain(name, g, r, dims, (axes or {}), (constants or {}).get(name, {}),
                                   (zero_hints or {}).get(name))
        if hint is not None:
            found[name] = hint
    lines = {}
    for name, hint in found.items():
        lines.setdefault(hint, []).append(name)
    return found, [f"{', '.join(names)}: {hint}" for hint, names in lines.items()]


# --------------------------------------------------------------------------- derivatives
#: the derivatives learners write for each squashing function, of its output value ``s``
#: (and of its input ``a`` where the checker knows it): (words, function)
DERIVATIVES = {
    "sigmoid": ("{s} (1 - {s})", lambda s: s * (1 - s), [
        ("1 - {s}^2", lambda s: 1 - s * s), ("{s}", lambda s: s), ("1 - {s}", lambda s: 1 - s),
        ("1 (the derivative left out)", np.ones_like), ("-{s} (1 - {s})", lambda s: -s * (1 - s)),
        ("{s} (1 + {s})", lambda s: s * (1 + s)), ("(1 - {s})^2", lambda s: (1 - s) ** 2),
        ("{s}^2", lambda s: s * s)]),
    "tanh": ("1 - {s}^2", lambda s: 1 - s * s, [
        ("1 - {s}", lambda s: 1 - s), ("{s} (1 - {s})", lambda s: s * (1 - s)),
        ("1 + {s}^2", lambda s: 1 + s * s), ("1 (the derivative left out)", np.ones_like),
        ("(1 - {s})^2", lambda s: (1 - s) ** 2), ("1 - 2 {s}", lambda s: 1 - 2 * s), ("{s}", lambda s: s),
        ("-(1 - {s}^2)", lambda s: -(1 - s * s))]),
    "relu": ("[z > 0]", lambda s: (s > 0).astype(float), [
        ("1 (the mask left out: dz = dnext_h)", np.ones_like), ("{s} (the output, not [z > 0])", lambda s: s)]),
}


def derivative_hypotheses(build, where, kind, value, symbol, pre=None, pre_symbol=None):
    """Hypotheses for a local derivative written wrong.

    ``build(deriv)`` recomputes the backward's outputs as {tensor: array} with the derivative
    of the squashing function ``kind`` at ``where`` (words: "the forget gate f") replaced by
    the array ``deriv``; ``value`` is that function's output in the forward pass, written
    ``symbol`` in the hints; ``pre`` its input (``pre_symbol``), when the checker has it, for
    the derivative taken at the input instead of the output.
    """
    right, _, wrongs = DERIVATIVES[kind]
    right = right.format(s=symbol)
    out = []
    cands = [(w.format(s=symbol), f(value)) for w, f in wrongs]
    if pre is not None:  # the right formula, but of the function's input instead of its output
        ps = pre_symbol or "a"
        cands.append((DERIVATIVES[kind][0].format(s=ps) + f" (of the input {ps}, not of the output {symbol})",
                      DERIVATIVES[kind][1](pre)))
    for words, deriv in cands:
        if kind == "relu" and words.startswith("1 ("):
            hint = f"the ReLU mask is missing: relu' = {right}, so dz = dnext_h * (z > 0), before any product"
        elif words.startswith("1 ("):
            hint = f"the derivative of {where} is left out: {kind}' = {right}"
        else:
            hint = f"the derivative of {where} is written {words}: {kind}' = {right}"
        out.append(Hypothesis(hint, build(deriv)))
    return out
