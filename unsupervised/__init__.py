"""Features to pseudo-classes: image folders, feature extraction, faiss k-means, a linear pseudo-class head."""

from .clustering import KMeansResult, kmeans
from .data import ImageFolderData
from .errors import DataError
from .features import Features, extract_features

__all__ = ["DataError", "Features", "ImageFolderData", "KMeansResult", "extract_features", "kmeans"]
