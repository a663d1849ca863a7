"""plmkit: pretrain the classic language-model families from raw text, end to end."""

__version__ = "0.1.0"

from plmkit.errors import PlmkitError  # noqa: E402

__all__ = ["PlmkitError", "__version__", "generate"]


def __getattr__(name: str):
    """Heavy parts load on first use, so `import plmkit` stays light (no torch).

    `plmkit.generate(run, prompts, …)`: the module `plmkit.generate`, which is callable.
    """
    if name == "generate":
        import importlib

        return importlib.import_module("plmkit.generate")
    raise AttributeError(f"module 'plmkit' has no attribute {name!r}")
