"""Features to pseudo-classes: image folders, feature extraction, faiss k-means, a linear pseudo-class head."""

from .data import ImageFolderData
from .errors import DataError

__all__ = ["DataError", "ImageFolderData"]
