"""The notebook layer: the IPython extension, its magics, hooks and displays.

This is the only part of nbtrack that imports IPython; the core never imports it.
"""
