"""Core: what every layer shares. Errors (`InputError`), atomic file writes, safe names, the data-side sizes
(`AVSpec` and its presets) and signal helpers (mono, resampling, STFT, onset strength, WAV writing).

Imports nothing else of foleylib.
"""
