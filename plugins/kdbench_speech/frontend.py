"""The log-mel front end: every clip becomes one [n_mels, frames] image before a model sees it.

Computed once per clip and cached (see ``fsdd``), so models, teachers' cached outputs and
latency figures all start from the features; the front end's cost is not part of a model's
latency. Its parameters are part of the feature cache key: changing one recomputes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
import torchaudio


@dataclass(frozen=True)
class FrontEnd:
    """1 s at 8 kHz, 25 ms Hann windows every 10 ms, 40 HTK mel bands, natural log.

    ``log(power + floor)`` rather than decibels with a ``top_db`` clip: the floor (1e-6)
    lies near the power of 16-bit quantisation noise summed over a band, so zero padding
    and the recordings' own silence meet at about the same level, and no per-clip maximum
    enters the features.
    """

    sample_rate: int = 8000
    samples: int = 8000
    n_fft: int = 200
    hop_length: int = 80
    n_mels: int = 40
    floor: float = 1e-6

    @property
    def frames(self) -> int:
        return self.samples // self.hop_length + 1  # centred frames

    def params(self) -> dict[str, Any]:
        """The parameters as plain data, for cache keys and task info."""
        return asdict(self)

    def fix_length(self, waveform: torch.Tensor) -> torch.Tensor:
        """Centre a clip in ``samples``: zero-padded on both sides, or its middle kept.

        Centring (not left-aligning) keeps a short word away from the window's edges, so a
        time shift in either direction rarely pushes speech out of the window.
        """
        excess = waveform.shape[-1] - self.samples
        if excess >= 0:
            return waveform[..., excess // 2 : excess // 2 + self.samples]
        left = -excess // 2
        return torch.nn.functional.pad(waveform, (left, -excess - left))

    def transform(self) -> torchaudio.transforms.MelSpectrogram:
        return torchaudio.transforms.MelSpectrogram(
            sample_rate=self.sample_rate, n_fft=self.n_fft, hop_length=self.hop_length,
            n_mels=self.n_mels,
        )

    def log_mel(self, waveforms: torch.Tensor) -> torch.Tensor:
        """Log-mel features [B, n_mels, frames] of waveforms [B, samples] in [-1, 1]."""
        return torch.log(self.transform()(waveforms) + self.floor)
