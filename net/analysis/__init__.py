"""Looking at a net: per-layer timing, scoring over batches, gradient checks, training
diagnostics, drawing the graph, and structured training logs. The tools time_net,
test_net, check_grad, draw_net and plot_training_log are thin layers over these."""
