"""domainfm plugin for customer service: intents, knowledge-base retrieval, answers and hand-off.

Heavy libraries (torch, transformers, faiss, bm25s) are imported inside functions only, so that
``domainfm plugins list`` stays fast.
"""

__version__ = "0.1.0"
DOMAIN = "customer_service"
OUT_OF_SCOPE = "out_of_scope"
