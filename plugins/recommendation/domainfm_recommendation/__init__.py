"""domainfm recommendation plugin: text-aware recommendations, FAISS retrieval, pinned evaluation."""

__version__ = "0.1.0"
