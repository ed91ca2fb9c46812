"""The regression corpus: every input that ever made fuzzing fail, as a recipe that rebuilds it from a generated
seed file (tests/fuzz_targets.py MEDIA_SEEDS, the aligned clip or the run), and what it must get now.

An entry: id, `found` (how it failed before its fix), the case (seed, recipe, optional args and cli; see
tests/fuzz_targets.py), the entry points it goes through, and the verdict it must get there ("refused" with a
reason containing `reason`, or "ok"; a dict gives one per entry point). A failure kept by `make fuzz`
(OUT/failures/<case>/case.json) becomes an entry by copying its seed, recipe and args here, with the verdict its
fix gives.
"""
from __future__ import annotations

ALL_MEDIA = ("ingest", "generate", "collect", "studio")

CORPUS = [
    {"id": "minf-type-flip",
     "found": "tests/test_fuzz.py (Hypothesis, op=flip at=0.9609375 length=2 seed=0): 2 bytes of the video trak's "
              "minf box type; ffmpeg finds a video stream of no codec and no size, probe crashed with TypeError "
              "at `width, height = info['video_size']`",
     "seed": "good.mp4", "recipe": {"op": "flip", "node": "moov/trak/mdia/minf", "offset": 4, "length": 2, "rng": 0},
     "targets": ALL_MEDIA, "expect": "refused", "reason": "video stream of unknown codec"},
    {"id": "stsd-insert-1",
     "found": "a one-byte insert in the video sample description (stsd); the same TypeError in probe",
     "seed": "good.mp4", "recipe": {"op": "insert", "node": "moov/trak/mdia/minf/stbl/stsd", "offset": 6,
                                    "length": 1, "rng": 0},
     "targets": ALL_MEDIA, "expect": "refused", "reason": "video stream of unknown codec"},
    {"id": "stsd-zero-64",
     "found": "64 zeroed bytes from the video sample description (stsd); the same TypeError in probe",
     "seed": "good.mp4", "recipe": {"op": "zero", "node": "moov/trak/mdia/minf/stbl/stsd", "offset": 7,
                                    "length": 64, "rng": 0},
     "targets": ALL_MEDIA, "expect": "refused", "reason": "video stream of unknown codec"},
    {"id": "stbl-cut",
     "found": "the file cut inside the video trak's sample table (stbl), the end of the index lost; the same "
              "TypeError in probe",
     "seed": "good.mp4", "recipe": {"op": "cut", "node": "moov/trak/mdia/minf/stbl", "offset": 7, "rng": 0},
     "targets": ALL_MEDIA, "expect": "refused", "reason": "video stream of unknown codec"},
    {"id": "audio-mdhd-insert-1",
     "found": "a one-byte insert in the audio trak's media header (mdhd): moviepy's parser raised AttributeError "
              "(not caught: internal failure)",
     "seed": "good.mp4", "recipe": {"op": "insert", "node": "moov/trak#1/mdia/mdhd", "offset": 29, "length": 1,
                                    "rng": 0},
     "targets": ALL_MEDIA, "expect": "refused", "reason": "unreadable media information"},
    {"id": "avi-strl-dup",
     "found": "make fuzz: the AVI's video stream header list duplicated; generate --seconds 0.4 wrote an MP4 "
              "without video and reported success",
     "seed": "tiny.avi", "recipe": {"op": "dup_node", "node": "RIFF.AVI/LIST.hdrl/LIST.strl", "rng": 1662917084},
     "args": ["--seconds", "0.4"], "targets": ("generate",), "expect": "refused",
     "reason": "gives no frames to copy"},
    {"id": "avi-strl-swap",
     "found": "make fuzz: the AVI's audio stream header and format swapped; moviepy's warning about the unknown "
              "stream (13 lines) went to stderr before the error",
     "seed": "tiny.avi", "recipe": {"op": "swap", "node": "RIFF.AVI/LIST.hdrl/LIST.strl#1/strh",
                                    "other": "RIFF.AVI/LIST.hdrl/LIST.strl#1/strf", "rng": 264427512},
     "targets": ("ingest", "collect"), "cli": True, "expect": {"ingest": "refused", "collect": "ok"},
     "reason": "no audio track"},
    # damaged aligned clip folders (train, evaluate)
    {"id": "npy-header-length",
     "found": "make fuzz: a flipped byte in audio.npy's header length; np.load's error (3 lines) was the message",
     "seed": "clip", "recipe": {"file": "audio.npy", "op": "flip", "at": 0.000142, "length": 1, "rng": 462371908},
     "targets": ("train", "evaluate"), "expect": "refused", "reason": "cannot read audio.npy: Header info length"},
    {"id": "npy-header-text",
     "found": "make fuzz: 256 random bytes over audio.npy's header; np.load raised tokenize.TokenError (internal "
              "failure)",
     "seed": "clip", "recipe": {"file": "audio.npy", "op": "flip", "at": 0.001577, "length": 256,
                                "rng": 2140549777},
     "targets": ("train", "evaluate"), "expect": "refused", "reason": "cannot read audio.npy"},
    {"id": "audio-npy-shifted",
     "found": "make fuzz: a byte of audio.npy's data duplicated, every sample shifted into garbage with NaN; "
              "evaluate's histogram raised ValueError (internal failure)",
     "seed": "clip", "recipe": {"file": "audio.npy", "op": "dup", "at": 0.001631, "length": 1, "rng": 1304924811},
     "targets": ("train", "evaluate"), "expect": "refused", "reason": "NaN or infinite samples"},
    {"id": "meta-source-number",
     "found": "make fuzz: meta.json's source -1; evaluate made a Path of it, TypeError (internal failure)",
     "seed": "clip", "recipe": {"file": "meta.json", "op": "json_set", "key": "source", "value": "negative",
                                "rng": 1983632365},
     "targets": ("train", "evaluate"), "expect": "refused", "reason": "meta.json has impossible source -1"},
    # damaged run folders (generate, evaluate)
    {"id": "ckpt-spec-dict",
     "found": "make fuzz: model.pt's spec.context_samples a dict; AVSpec raised TypeError outside load_model's "
              "guard (internal failure)",
     "seed": "run", "recipe": {"file": "model.pt", "op": "ckpt_set", "key": "spec.context_samples", "value": "dict",
                               "rng": 2009805348},
     "targets": ("generate-run", "evaluate-run"), "expect": "refused", "reason": "not a valid checkpoint"},
    {"id": "ckpt-config-nan",
     "found": "make fuzz: model.pt's model_config.stacks NaN; build_model raised TypeError (internal failure)",
     "seed": "run", "recipe": {"file": "model.pt", "op": "ckpt_set", "key": "model_config.stacks", "value": "nan",
                               "rng": 1749267479},
     "targets": ("generate-run", "evaluate-run"), "expect": "refused", "reason": "not a valid checkpoint"},
    {"id": "ckpt-config-string",
     "found": "make fuzz: model.pt's model_config.samples_per_frame a string; ModelConfig raised TypeError "
              "(internal failure)",
     "seed": "run", "recipe": {"file": "model.pt", "op": "ckpt_set", "key": "model_config.samples_per_frame",
                               "value": "string", "rng": 1977524397},
     "targets": ("generate-run", "evaluate-run"), "expect": "refused", "reason": "not a valid checkpoint"},
    {"id": "ckpt-config-enormous",
     "found": "make fuzz: model.pt's model_config.dilation_cycle 10^30; build_model listed dilations until the "
              "worker ran out of memory",
     "seed": "run", "recipe": {"file": "model.pt", "op": "ckpt_set", "key": "model_config.dilation_cycle",
                               "value": "enormous", "rng": 735951138},
     "targets": ("generate-run", "evaluate-run"), "expect": "refused", "reason": "past any model that fits"},
    {"id": "ckpt-spec-size-dropped",
     "found": "make fuzz: model.pt's spec without size (AVSpec's default 64, the model's 32); generate decoded "
              "64x64 frames for a 32x32 model, ValueError in numpy (internal failure)",
     "seed": "run", "recipe": {"file": "model.pt", "op": "ckpt_drop", "key": "spec.size", "rng": 1736131540},
     "targets": ("generate-run", "evaluate-run"), "expect": "refused", "reason": "disagree on channels, frame size"},
    {"id": "ckpt-zeroed-bytes",
     "found": "make fuzz: 8 zeroed bytes early in model.pt; torch.load raised UnpicklingError (internal failure)",
     "seed": "run", "recipe": {"file": "model.pt", "op": "zero", "at": 0.003121, "length": 8, "rng": 941380083},
     "targets": ("generate-run",), "expect": "refused", "reason": "not a valid checkpoint"},
    {"id": "config-window-zero",
     "found": "make fuzz: config.json's train.window 0; evaluate divided by zero (internal failure)",
     "seed": "run", "recipe": {"file": "config.json", "op": "json_set", "key": "train.window", "value": "zero",
                               "rng": 1879253267},
     "targets": ("evaluate-run",), "expect": "refused", "reason": "train.window is out of range"},
]
