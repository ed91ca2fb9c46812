from fractions import Fraction

import numpy as np
import pytest

from foleylib.core.config import MODEL_PRESETS, PRESETS, AVSpec, as_fraction, preset
from foleylib.models.config import ModelConfig, model_config


def test_samples_per_frame_exact():
    assert AVSpec(sr=16000, fps=25).samples_per_frame == 640
    assert AVSpec(sr=44100, fps=30).samples_per_frame == 1470
    assert AVSpec(sr=16000, fps=30).samples_per_frame == Fraction(1600, 3)
    assert as_fraction(29.97) == Fraction(30000, 1001)
    assert as_fraction("30000/1001") == Fraction(30000, 1001)


def test_frame_of_sample_rule_integer_rate():
    spec = AVSpec(sr=16000, fps=25)
    assert [spec.frame_of_sample(i) for i in (0, 639, 640, 1279, 1280)] == [0, 0, 1, 1, 2]
    assert [spec.frame_start(k) for k in (0, 1, 2, 10)] == [0, 640, 1280, 6400]


def test_frame_of_sample_rule_fractional_rate():
    spec = AVSpec(sr=16000, fps=30)  # 533.33 samples per frame
    assert [spec.frame_start(k) for k in range(4)] == [0, 534, 1067, 1600]
    # every sample belongs to the frame whose span holds it
    for i in range(0, 1600):
        k = spec.frame_of_sample(i)
        assert spec.frame_start(k) <= i < spec.frame_start(k + 1)
    assert spec.max_samples_per_frame == 534
    positions = np.arange(-1700, 1700)
    assert spec.frames_of_samples(positions).tolist() == [spec.frame_of_sample(int(i)) for i in positions]


def test_clip_lengths_paper_rule():
    spec = AVSpec(sr=16000, fps=25)
    # 10 s of video (250 frames) and 160123 samples: audio loses 123 (len % 640), frames stay 250
    assert spec.clip_lengths(160123, 250) == (250, 160000)
    # audio shorter than video: frames clipped to len(audio) / spf = 100, audio to 64000
    assert spec.clip_lengths(64500, 250) == (100, 64000)
    # video shorter than audio: audio follows the frames
    assert spec.clip_lengths(160000, 200) == (200, 128000)
    # fractional rate: 10000 samples at 1600/3 per frame -> 18 whole frames, 9600 samples
    assert AVSpec(sr=16000, fps=30).clip_lengths(10000, 99) == (18, 9600)
    assert spec.clip_lengths(639, 5) == (0, 0)


def test_presets_and_validation():
    assert preset("default") == AVSpec()
    assert preset("tiny").sr == 8000
    with pytest.raises(ValueError, match="unknown preset 'huge'"):
        preset("huge")
    with pytest.raises(ValueError, match="sr must be positive"):
        AVSpec(sr=0)


def test_one_preset_table_sizes_data_and_models():
    assert MODEL_PRESETS == ("tiny", "small", "default")  # "paper" sizes the data only
    assert preset("paper") == PRESETS["paper"].spec and not PRESETS["paper"].model
    for name in MODEL_PRESETS:
        cfg = model_config("wavenet", name, preset(name))
        assert {k: getattr(cfg, k) for k in PRESETS[name].model} == PRESETS[name].model
        assert cfg.spec_for(preset(name)) == preset(name)
    with pytest.raises(ValueError, match="unknown model preset 'paper'; choose one of tiny, small, default"):
        model_config("wavenet", "paper", preset("paper"))
    assert ModelConfig.spec_fields(preset("paper"))["samples_per_frame"] == 735  # 22050 / 30
