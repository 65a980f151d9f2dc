"""Files: the one atomic writer, and the one reader and writer of scratchnet's ``.npz`` format.

Everything scratchnet writes (models, checkpoints, scores, figures, audio, logs) goes through
:func:`atomic_write`: the bytes go to a temporary file beside the target, which is renamed over
it only when complete, so a crash, Ctrl-C or SIGTERM never leaves half a file under the real
name, and the temporary file is removed on the way out.  The temporary name holds the host and
pid of its writer, so that one left by a killed process (SIGKILL, a power cut) is removed by
the next write of the same file (:func:`remove_stale_temporaries`).  :func:`folder_lock` keeps
two commands from writing into one folder at once.

The ``.npz`` format (saved models and training checkpoints alike) is a NumPy archive of named
arrays plus one JSON document, ``meta_json``, for everything that is not an array (a model's
config, a checkpoint's position).  :func:`save_npz` writes it and :func:`load_npz` reads it;
a file that is missing, empty, truncated, a folder or not an archive at all is refused with
one :class:`~scratchnet.errors.ScratchnetError` that names it.
"""
import contextlib
import json
import os
import re
import socket
import tempfile
import zipfile

from .errors import ScratchnetError


class WriteError(ScratchnetError):
    """A file could not be written; ``reason`` is the system's word for why (``strerror``)."""

    def __init__(self, message, reason=None):
        super().__init__(message)
        self.reason = reason


def check_writable(path, what="output"):
    """Refuse, before any work is done, an output ``path`` that could not be written.

    The folder must exist and be writable, and ``path`` must not be a folder.  Returns the path.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise ScratchnetError(f"cannot write {what} {path!r}: it is a folder")
    if not os.path.isdir(folder):
        raise ScratchnetError(f"cannot write {what} {path!r}: folder {folder!r} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ScratchnetError(f"cannot write {what} {path!r}: folder {folder!r} is not writable")
    return path


def make_folder(path, what="output folder"):
    """Create folder ``path`` (and its parents) or refuse with one line saying why."""
    path = os.fspath(path)
    if os.path.exists(path) and not os.path.isdir(path):
        raise ScratchnetError(f"cannot use {what} {path!r}: it is a file")
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        raise ScratchnetError(f"cannot create {what} {path!r}: {e.strerror}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ScratchnetError(f"cannot write into {what} {path!r}: permission denied")
    return path


@contextlib.contextmanager
def new_folder(path, what="output folder"):
    """Create folder ``path`` (and missing parents) for the outputs of the ``with`` block.

    If the block fails (an error, Ctrl-C, SIGTERM), the folders created here are removed
    again, deepest first, as long as they are empty: a failed command leaves no empty
    output folder behind.  A folder that already existed is never removed.
    """
    created, folder = [], os.path.abspath(os.fspath(path))
    while not os.path.exists(folder):
        created.append(folder)  # deepest first
        folder = os.path.dirname(folder)
    make_folder(path, what)
    try:
        yield os.fspath(path)
    except BaseException:
        for folder in created:
            try:
                os.rmdir(folder)
            except OSError:  # not empty (complete outputs of earlier work), or gone
                break
        raise


@contextlib.contextmanager
def atomic_write(path, mode="wb", *, suffix=None):
    """Open a temporary file beside ``path``; rename it to ``path`` when the block ends cleanly.

    Parameters
    ----------
    path : str or os.PathLike
    mode : {"wb", "w"}
        Binary or text.
    suffix : str, optional
        Ending of the temporary name (default: the extension of ``path``), for writers that
        choose a format by extension.

    Yields
    ------
    file object, open for writing.  On any exception (KeyboardInterrupt and SystemExit
    included) the temporary file is deleted and the exception goes on.

    Examples
    --------
    >>> with atomic_write("scores.json", "w") as f:      # doctest: +SKIP
    ...     json.dump(scores, f)
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write {mode=} must be 'w' or 'wb'")
    path = os.fspath(path)
    check_writable(path)
    folder, name = os.path.split(os.path.abspath(path))
    suffix = os.path.splitext(name)[1] if suffix is None else suffix
    remove_stale_temporaries(path)
    try:  # .<name>.<host>-<pid>.<random>.tmp<suffix>
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.{_owner()}.", suffix=f".tmp{suffix}", dir=folder)
    except OSError as e:
        raise WriteError(f"cannot write {path!r}: {e.strerror}", e.strerror) from None
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a normal file respects the umask
        with os.fdopen(fd, mode) as f:
            yield f
        os.replace(tmp, path)
    except OSError as e:
        raise WriteError(f"cannot write {path!r}: {e.strerror or e}", e.strerror or str(e)) from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _host():
    """This machine's name as it goes into file names (letters, digits, ``_`` and ``-``)."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname()) or "host"


def _owner():
    return f"{_host()}-{os.getpid()}"


def _alive(pid):
    """Whether process ``pid`` of this machine is running (another user's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temporaries(path):
    """Remove the temporary files of ``path`` that :func:`atomic_write` left in a process that
    is gone (killed by SIGKILL, a power cut): only names of its own pattern, written on this
    machine by a pid that no longer runs.  Another machine's (a shared folder) are left alone."""
    folder, name = os.path.split(os.path.abspath(os.fspath(path)))
    mine = re.compile(rf"\.{re.escape(name)}\.{re.escape(_host())}-(\d+)\.\w+\.tmp")
    try:
        entries = os.listdir(folder)
    except OSError:
        return
    for entry in entries:
        found = mine.match(entry)
        if found and not _alive(int(found.group(1))):
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(folder, entry))


#: The lock file :func:`folder_lock` holds in a folder while a command writes into it.
LOCK_NAME = ".scratchnet.lock"


@contextlib.contextmanager
def folder_lock(folder, what="output folder"):
    """Hold ``folder``'s lock for the ``with`` block; refuse in one line if another process holds it.

    The lock is ``flock`` on ``folder/.scratchnet.lock``: the system releases it when its
    process dies, however (SIGKILL included), so a lock file left behind is simply taken
    over.  The file holds its owner's pid and host, for the message, and is removed at the
    end.  Where ``fcntl`` is missing (Windows), nothing is locked.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover
        yield None
        return
    path = os.path.join(os.fspath(folder), LOCK_NAME)
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise ScratchnetError(f"cannot lock {what} {os.fspath(folder)!r}: {e.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # held
            owner = os.read(fd, 200).decode(errors="replace").strip() or "a process starting"
            os.close(fd)
            raise ScratchnetError(f"{what} {os.fspath(folder)!r} is being written by another "
                                  f"scratchnet command ({owner}): wait for it to end, or write "
                                  "elsewhere") from None
        try:  # still the file at that name, not one its last holder removed as we opened it?
            if os.path.samestat(os.fstat(fd), os.stat(path)):
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode())
        yield path
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
        os.close(fd)


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(path, text):
    """Write ``text`` to ``path`` atomically."""
    with atomic_write(path, "w") as f:
        f.write(text)
    return os.fspath(path)


def write_json(path, obj):
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    return write_text(path, json.dumps(obj, indent=2, allow_nan=True) + "\n")


def read_json(path, what="JSON file"):
    """Read a JSON document, refusing a missing, unreadable or malformed file in one line."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise ScratchnetError(f"{what} {path!r} is a folder, not a file")
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        raise ScratchnetError(f"{what} {path!r} does not exist") from None
    except OSError as e:
        raise ScratchnetError(f"cannot read {what} {path!r}: {e.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ScratchnetError(f"{what} {path!r} is not valid JSON (truncated?): {e}") from None


# --------------------------------------------------------------------------- the .npz format
META = "meta_json"


def save_npz(path, arrays, meta=None):
    """Write named ``arrays`` and a JSON-able ``meta`` dict to ``path`` (.npz), atomically.

    Array names may hold ``/`` and ``:`` (``param:hidden1/W``); ``meta`` is stored as the
    string array ``meta_json``.
    """
    import numpy as np
    arrays = dict(arrays)
    if META in arrays:
        raise ValueError(f"array name {META!r} is reserved for the metadata")
    arrays[META] = np.array(json.dumps(meta or {}))
    with atomic_write(path, "wb") as f:
        np.savez(f, **arrays)
    return os.fspath(path)


def load_npz(path, what="file"):
    """Read a file written by :func:`save_npz`: returns ``(arrays, meta)``, both dicts.

    Every array is read into memory (the archive is closed on return).  A missing path, a
    folder, an empty, truncated or corrupt file and a file that is not an ``.npz`` archive
    each give one :class:`ScratchnetError` naming ``path`` and ``what`` it should have been.
    Files of the format's first version, whose metadata sat in ``config_json`` (models) or
    ``state_json`` (checkpoints), are read too: their JSON comes back as ``meta["config"]``
    and ``meta["state"]``, where the present version keeps it.
    """
    import numpy as np
    path = os.fspath(path)
    if os.path.isdir(path):
        raise ScratchnetError(f"{what} {path!r} is a folder, not a .npz file")
    if not os.path.isfile(path):
        raise ScratchnetError(f"{what} {path!r} does not exist")
    if os.path.getsize(path) == 0:
        raise ScratchnetError(f"{what} {path!r} is empty (0 bytes)")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError, RuntimeError) as e:
        raise ScratchnetError(f"{path!r} is not a scratchnet {what} (.npz): truncated, corrupt "
                              f"or another kind of file ({type(e).__name__})") from None
    meta = {}
    for key, slot in ((META, None), ("config_json", "config"), ("state_json", "state")):
        if key in arrays:
            try:
                value = json.loads(str(arrays.pop(key)))
            except json.JSONDecodeError:
                raise ScratchnetError(f"{what} {path!r} has unreadable metadata") from None
            meta.update(value if slot is None else {slot: value})
    return arrays, meta
