"""Core: what every layer shares. Errors (`errors.InputError`), atomic writes (`fsutil`), safe names (`names`), the
data-side sizes and the one preset table (`config`: AVSpec, PRESETS), signal helpers over librosa (`audio`), the
device (`device`), option value types (`argtypes`) and progress bars that behave in logs (`progress`).

Imports nothing else of foleylib.
"""
