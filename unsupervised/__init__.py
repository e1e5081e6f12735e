"""Give a self-supervised backbone classes to explain: features, faiss clusters, pseudo-class head."""

__all__: list[str] = []
