"""Augmentations of normalised log-mel batches [B, 1, n_mels, frames] that a speech recipe can name.

They act on cached features, not waveforms: the task hands augmentations its inputs only,
and recomputing the front end every batch would cost more than the small students' training.
Every random draw comes from the run's generator, so a seed reproduces a run exactly.
"""

from __future__ import annotations

import torch
import torchaudio


def spec_augment(features: torch.Tensor, generator: torch.Generator, masks: int = 2,
                 mel_bands: int = 6, frames: int = 10) -> torch.Tensor:
    """SpecAugment's masking (Park et al. 2019, without time warping), per clip.

    ``masks`` frequency masks of up to ``mel_bands`` bands and as many time masks of up to
    ``frames`` frames (100 ms; a spoken digit lasts about 450 ms), set to 0 — the training
    mean after normalisation. torchaudio's masks draw from torch's global generator, so they
    run under a forked global state seeded from the run's generator: reproducible, and the
    global state is left as it was.
    """
    seed = int(torch.randint(0, 2**62, (), generator=generator))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        frequency = torchaudio.transforms.FrequencyMasking(mel_bands, iid_masks=True)
        time = torchaudio.transforms.TimeMasking(frames, iid_masks=True)
        for _ in range(masks):
            features = time(frequency(features))
    return features


def shift_noise(features: torch.Tensor, generator: torch.Generator, max_shift: int = 10,
                noise: float = 0.1) -> torch.Tensor:
    """Shift each clip by up to ``max_shift`` frames, then add Gaussian noise of std ``noise``.

    The frames uncovered by the shift repeat the clip's edge frame (its own silence, as
    clips are centred), and the noise is in normalised units: a cheap stand-in for
    misaligned keyword windows and a varying noise floor.
    """
    count, length = len(features), features.shape[-1]
    shifts = torch.randint(-max_shift, max_shift + 1, (count, 1), generator=generator)
    source = (torch.arange(length).unsqueeze(0) - shifts).clamp(0, length - 1)
    shifted = features.gather(-1, source.view(count, 1, 1, length).expand_as(features))
    return shifted + noise * torch.randn(features.shape, generator=generator)


AUGMENTATIONS = {"specaugment": spec_augment, "shift-noise": shift_noise}
