"""What is built over layers: the graph (Net) and the solvers."""
