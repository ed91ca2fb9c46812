"""foleylib: learning to generate audio for silent video."""
