"""Few-shot selection of a pretrained model from a pool (issue 11).

``scores`` (transferability scores), ``selectors`` (the interface and registry) and ``meta`` (the
meta-learned selector) are light; ``pool`` (members on disk, embedding, fine-tuning) and ``evaluate``
(selectors against the ground truth) import torch. Importing the package registers every selector.
"""

from metahpo.selection import meta, selectors  # noqa: F401  registers the selectors
