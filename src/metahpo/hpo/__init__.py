"""HPO strategies and the tabular replay benchmark (meta-datasets, ask/tell strategies, regret)."""
