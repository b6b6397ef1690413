"""The compute: one module per layer type, plus the Blob, the Layer contract, the registry."""
