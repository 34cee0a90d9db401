"""culteval: do language models share a culture's values and practices, not only its language?"""

__version__ = "0.1.0"
