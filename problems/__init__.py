"""Built-in problems, one file each; installed as the data package pinnsketch.builtin_problems.

The registry loads these files by path, exactly like a user's problem file; nothing imports
this package by name.
"""
