"""Self-supervised adaptation of a pretrained denoiser to a user's own noisy micrographs.

    >>> import temzoo
    >>> result = temzoo.adapt("hrnet_pretrained", ["a.tif", "b.dm4"], out="runs/mine")
    >>> temzoo.predict(temzoo.load(result.model_path), image)

No clean targets: the training signal comes from the noisy images themselves, by

* **binomial splitting** (``method="binomial"``, :mod:`temzoo.adaptation.splitting`):
  where pixels hold counts, each pixel's counts are split at random into two independent
  halves, one the input and one the target (Noise2Noise from a single exposure);
* **blind-spot masking** (``method="blind_spot"``, :mod:`temzoo.adaptation.masking`):
  Noise2Void with N2V2's median-of-neighbours replacement.

``method="auto"`` (default) splits where every frame holds counts and masks otherwise.
Settings and defaults: :class:`temzoo.adaptation.config.AdaptConfig`. Inputs and the
method they allow: :mod:`~temzoo.adaptation.inputs`; the output folder (resume, refusals):
:mod:`~temzoo.adaptation.folder`; training batches: :mod:`~temzoo.adaptation.sampler`; the
training loop, checkpoints and export: :mod:`temzoo.adaptation.run`.
"""

from temzoo.adaptation.config import DEFAULTS, METHODS, AdaptConfig
from temzoo.adaptation.run import AdaptResult, RunExistsError, adapt

__all__ = ["DEFAULTS", "METHODS", "AdaptConfig", "AdaptResult", "RunExistsError", "adapt"]
