"""Generation: sampling, the compiled incremental generators (`fastgen`, `kernels`), the engine that streams audio
for frames (`generate`) and dubbing a video with the result (`dub`).

May import: core, data, models, training.
"""
