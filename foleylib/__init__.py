"""foleylib: learning to generate audio for silent video."""

__version__ = "0.1.0"
