"""tclib: a reproducibility kit for TeachCLIP (CVPR 2024)."""

__version__ = "0.2.0"
