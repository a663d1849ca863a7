"""plmkit: pretrain the classic language-model families from raw text, end to end."""

__version__ = "0.1.0"

from plmkit.errors import PlmkitError  # noqa: E402

__all__ = ["PlmkitError", "__version__"]
