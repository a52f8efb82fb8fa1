"""Few-shot meta-learning: episodes, the Conv-4 learner, the method registry, meta-training, evaluation.

``episodes`` draws seeded N-way K-shot episodes from prepared image datasets with class-disjoint
meta-train / meta-validation / meta-test splits and reads fixed episode tables; ``backbone`` is the
Conv-4 learner; ``methods`` the registry (MAML, FOMAML, Reptile, ANIL, Meta-SGD, ProtoNet and the
baselines); ``meta_train`` the resumable outer loop; ``evaluate`` scores a method on episodes,
step by step. docs/ARCHITECTURE.md ("Few-shot meta-learning") says why it is written on torch.func
rather than on learn2learn or higher.
"""
