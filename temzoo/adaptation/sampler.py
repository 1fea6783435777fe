"""Training batches of an adaptation run: patches of the noisy frames, masked or split."""

import numpy as np


class PatchSampler:
    """Training batches for step ``k``, drawn from ``(seed, k)`` only (so a resume is exact).

    Frames are picked with probability proportional to their area; each patch gets a random
    crop, flip and quarter turn. Blind spot: patches of the normalised frames, masked.
    Binomial: patches of the counts, split, then normalised with the frame's statistics.
    """

    def __init__(self, frames, method, config, normalizer, patch_size):
        from temzoo.adaptation.splitting import to_counts

        self.method, self.config, self.patch = method, config, int(patch_size)
        self.sources, self.stats = [], []
        for name, frame in frames:
            if method == "binomial":
                counts = to_counts(frame, config.gain, config.offset, name)
                self.stats.append(normalizer.stats(counts))
                self.sources.append(counts.astype(np.float32))
            else:
                normalised, stats = normalizer.before(frame)
                self.stats.append(stats)
                self.sources.append(normalised)
        areas = np.array([s.size for s in self.sources], np.float64)
        self.weights = areas / areas.sum()

    def _crops(self, rng, batch_size):
        p = self.patch
        picks = rng.choice(len(self.sources), size=batch_size, p=self.weights)
        crops = []
        for k in picks:
            source = self.sources[k]
            y = int(rng.integers(0, source.shape[0] - p + 1))
            x = int(rng.integers(0, source.shape[1] - p + 1))
            crop = source[y:y + p, x:x + p]
            crop = np.rot90(crop, int(rng.integers(4)))
            if rng.integers(2):
                crop = crop[:, ::-1]
            crops.append((k, np.ascontiguousarray(crop)))
        return crops

    def batch(self, step):
        """``(inputs, targets, weights)`` for step ``step``, each ``(N, P, P, 1)`` float32."""
        from temzoo.adaptation.masking import blind_spot_batch
        from temzoo.adaptation.splitting import binomial_split

        rng = np.random.default_rng([self.config.seed, int(step)])
        crops = self._crops(rng, self.config.batch_size)
        if self.method == "blind_spot":
            return blind_spot_batch([c for _, c in crops], self.config.mask_fraction, self.config.neighbourhood, rng)
        inputs, targets = [], []
        for k, crop in crops:
            first, second = binomial_split(crop, self.config.split_fraction, rng)
            offset, scale = self.stats[k]
            inputs.append((first - offset) / scale)
            targets.append((second - offset) / scale)
        inputs = np.stack(inputs)[..., None].astype(np.float32)
        targets = np.stack(targets)[..., None].astype(np.float32)
        return inputs, targets, np.ones_like(targets)

    def plain(self, step):
        """Unmasked, unsplit normalised patches (what the model sees at prediction), for precise BN."""
        rng = np.random.default_rng([self.config.seed, 10**9 + int(step)])
        out = []
        for k, crop in self._crops(rng, self.config.batch_size):
            offset, scale = self.stats[k]
            out.append(crop if self.method == "blind_spot" else (crop - offset) / scale)
        return np.stack(out)[..., None].astype(np.float32)

