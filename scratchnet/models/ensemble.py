"""An ensemble: several trained models, one soft mask, the mean of theirs.

Each member k turns the mixture's magnitudes X (T, F) into its joint soft mask (Huang et al.)

    m_k = |a1_k| / (|a1_k| + |a2_k|),     y1_k = m_k X,   y2_k = (1 - m_k) X,

and the ensemble separates with the mean mask

    m = (1/K) sum_k m_k,                  y1 = m X = (1/K) sum_k y1_k,   y2 = (1/K) sum_k y2_k.

Averaging the estimates is averaging the masks, because each member's two estimates sum to X.
Models trained with different augmentations make different mistakes on a voice none of them
heard, and the mean mask keeps what they agree on: on a held-out singer two such models
scored 0.25 dB above the better of them (figures/README.md, issue 13).

Nothing is trained here, so there is no backward pass: members are trained alone
(``scratchnet train``) and joined afterwards (``scratchnet ensemble``).  An ensemble runs
every member, so it separates K times slower than one of them.

Saved as one ``.npz``: each member's arrays under ``member<k>/``, and the config
``{"arch": "ensemble", "members": [config_0, ...], <the members' STFT>}``;
:func:`scratchnet.models.load_model` reads it back as an :class:`Ensemble`.
"""
import numpy as np

from ..errors import ScratchnetError
from .model import Model, model_from_arrays, save_with_config

#: config keys every member must share: one STFT, one mask, applied to one spectrogram
SHARED = ("n_bins", "n_fft", "hop_length", "window")


class Ensemble:
    """The mean soft mask of trained :class:`Model` s; predicts like a model, does not train.

    Parameters
    ----------
    members : sequence of Model
        At least one, all with the same STFT (:data:`SHARED`); none an ensemble itself.
    """

    def __init__(self, members):
        members = list(members)
        if not members:
            raise ScratchnetError("an ensemble needs at least one model")
        if not all(isinstance(m, Model) for m in members):
            raise ScratchnetError("an ensemble's members must be single models, not ensembles")
        first = members[0].config
        for k, m in enumerate(members[1:], 1):
            differ = [key for key in SHARED if m.config.get(key) != first.get(key)]
            if differ:
                raise ScratchnetError(
                    f"ensemble member {k} has another {', '.join(differ)} than member 0 "
                    f"({', '.join(f'{key} {m.config.get(key)} vs {first.get(key)}' for key in differ)}): "
                    "the members must share one STFT")
        self.members = members
        self.dtype = members[0].dtype
        self.config = {"arch": "ensemble", **{key: first[key] for key in SHARED},
                       "dtype": first["dtype"], "members": [m.config for m in members]}

    def n_params(self):
        return int(sum(m.n_params() for m in self.members))

    def predict(self, X, *, seq_len=None):
        """The mean of the members' estimates for one spectrogram X (T, F) -> (y1, y2).

        ``seq_len`` None runs each member as it was shipped (its ``inference_seq_len``).
        """
        y1, y2 = np.zeros(X.shape, self.dtype), np.zeros(X.shape, self.dtype)  # T,F each
        for m in self.members:
            a1, a2 = m.predict(X, seq_len=seq_len if seq_len else m.config.get("inference_seq_len"))
            y1 += a1
            y2 += a2
        return y1 / len(self.members), y2 / len(self.members)

    def arrays(self, storage_dtype=None):
        """Every member's :meth:`Model.arrays`, under ``member<k>/``."""
        return {f"member{k}/{name}": v for k, m in enumerate(self.members)
                for name, v in m.arrays(storage_dtype).items()}

    def save(self, path, *, storage_dtype=None):
        """Write ``path`` (.npz) and its config as .json beside, atomically, as :meth:`Model.save`."""
        return save_with_config(path, self.arrays(storage_dtype), self.config)

    @classmethod
    def from_arrays(cls, arrays, config, *, source="arrays", dtype=None):
        """The ensemble a :meth:`save` wrote: ``arrays`` and ``config`` as read from its file."""
        configs = config.get("members")
        if not isinstance(configs, list) or not configs:
            raise ScratchnetError(f"{source}: an ensemble config without members")
        members, claimed = [], set()
        for k, member_config in enumerate(configs):
            prefix = f"member{k}/"
            own = {name[len(prefix):]: v for name, v in arrays.items() if name.startswith(prefix)}
            claimed.update(prefix + name for name in own)
            if not own:
                raise ScratchnetError(f"{source}: ensemble member {k} has no tensors")
            if not isinstance(member_config, dict) or member_config.get("arch") == "ensemble":
                raise ScratchnetError(f"{source}: ensemble member {k} has no single model's config")
            members.append(model_from_arrays(own, member_config, source=f"{source} (member {k})",
                                             dtype=dtype))
        stray = set(arrays) - claimed
        if stray:
            raise ScratchnetError(f"{source}: tensors {', '.join(sorted(stray)[:3])} belong to no ensemble member")
        return cls(members)
