"""The meta-learned learning-rate controller (issue 12): the controller, the learning-rate methods it
is compared with, its evolution-strategies meta-training and the evaluation on held-out tasks."""
