"""inkloop: a continual-learning loop for a handwritten-paragraph text recognizer.

This package holds what every part shares: settings, errors, the content-addressed image store and the CLI.
"""

__version__ = "0.1.0"
