"""Core: what every layer shares. Errors (`InputError`), atomic file writes, safe names, the data-side sizes
(`AVSpec` and its presets), signal helpers (mono, resampling, STFT, onset strength, WAV writing) and progress bars
that behave in logs (`progress`).

Imports nothing else of foleylib.
"""
