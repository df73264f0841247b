"""The template's runtime: the machinery a user writing a trainer never needs to open.

This package imports nothing on purpose: the launcher (no TensorFlow), the notebook tool and the
template's own pre-generation hook each import only the modules they need (``rules``,
``project_file``), and those use the standard library only.
"""
