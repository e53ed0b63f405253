"""The lab's applications. Each module is a real app its real server imports; see ../targets.py.

These are deliberately flawed (except where targets.py says "none"): do not copy them.
"""
