"""Few-shot selection of a pretrained model from a pool (issue 11): transferability scores first."""
