"""The built-in demo: a synthetic world with object masks and reference backbones trained on it."""
