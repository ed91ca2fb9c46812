"""Interfaces: what a user runs. The `foley` command line (`cli`), the JupyterLab studio (`widgets`), the
benchmark (`bench`) and the one-command demo (`demo`).

May import: every other layer; nothing imports it.
"""
