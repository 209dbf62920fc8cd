"""Sphinx configuration of sensinet's API reference (built with warnings as errors in CI)."""
import sensinet

project = "sensinet"
author = "the sensinet developers"
copyright = "2026, the sensinet developers"
release = sensinet.__version__
version = release

extensions = ["sphinx.ext.autodoc", "sphinx.ext.autosummary", "sphinx.ext.napoleon", "sphinx.ext.mathjax"]
autosummary_generate = True
autodoc_default_options = {"members": True, "undoc-members": False, "show-inheritance": False}
autodoc_typehints = "none"  # the signatures carry the defaults; types are in the parameter lists
autodoc_member_order = "bysource"
napoleon_numpy_docstring = True
napoleon_google_docstring = False
napoleon_use_rtype = False
napoleon_use_param = False  # types as text ("array (n_samples, n_inputs)"), not as cross-references


def _skip_foreign(app, what, name, obj, skip, options):
    """Leave out members a class inherits or gets from scikit-learn (score, set_*_request, ...): their
    docstrings belong to scikit-learn's documentation."""
    module = getattr(obj, "__module__", None) or ""
    if module and not module.startswith("sensinet") and what in ("class", "method", "attribute", "function"):
        return True
    return skip


def setup(app):
    app.connect("autodoc-skip-member", _skip_foreign)
exclude_patterns = ["_build", "results", "generated/*.md"]
html_theme = "alabaster"
html_static_path: list = []
nitpicky = False
# types in parameter lists are text such as "array (n_samples, n_inputs)"; a word there that names several
# attributes is not a broken reference
suppress_warnings = ["ref.python"]
