import pytest
import torch

from models.networks import (
    KINDS,
    build,
    config_from_dict,
    config_to_dict,
    make_config,
    n_parameters,
)


@pytest.mark.parametrize("kind,preset", [(k, p) for k, (_, _, ps) in KINDS.items() for p in ps])
def test_every_model_maps_windows_to_three_logits(kind, preset):
    cfg = make_config(kind, preset, n_features=7, window=16)
    model = build(kind, cfg)
    out = model(torch.randn(4, 16, 7))
    assert out.shape == (4, 3)
    assert torch.isfinite(out).all()
    rebuilt = build(kind, config_from_dict(kind, config_to_dict(cfg)))
    assert n_parameters(rebuilt) == n_parameters(model)


@pytest.mark.parametrize("preset", ["article", "modern"])
def test_attention_weights_are_distributions_over_the_window(preset):
    torch.manual_seed(0)
    model = build("attention", make_config("attention", preset, 12, 20)).eval()
    x = torch.randn(3, 20, 12)
    logits, maps = model(x, return_attention=True)
    assert len(maps) == 2
    for m in maps:
        assert m.shape[0] == 3 and m.shape[-2:] == (20, 20)
        torch.testing.assert_close(m.sum(-1), torch.ones(m.shape[:-1]))
    # The weights returned are the ones used: the same logits as the fast path.
    torch.testing.assert_close(logits, model(x), rtol=1e-5, atol=1e-5)


def test_article_attention_has_the_part8_shape():
    cfg = make_config("attention", "article", 12, 20)
    assert (cfg.d_model, cfg.n_heads, cfg.n_layers, cfg.d_ff, cfg.head_hidden) == (36, 1, 2, 72, 200)
    model = build("attention", cfg)
    assert model.embed.in_features == 12 and model.embed.out_features == 36
    assert [m.out_features for m in model.head if isinstance(m, torch.nn.Linear)] == [200, 200, 3]


def test_matched_dense_has_about_the_attention_parameter_count():
    att = n_parameters(build("attention", make_config("attention", "article", 12, 20)))
    dense = n_parameters(build("dense", make_config("dense", "matched", 12, 20)))
    assert abs(dense - att) / att < 0.05
    article_dense = build("dense", make_config("dense", "article", 12, 20))
    assert [m.out_features for m in article_dense.net if isinstance(m, torch.nn.Linear)] == [
        1000, 300, 90, 27, 3]


def test_unknown_model_or_preset_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown model"):
        make_config("transformerxl", "article", 12, 20)
    with pytest.raises(ValueError, match="unknown attention preset"):
        make_config("attention", "huge", 12, 20)


@pytest.mark.parametrize("n_features", [12, 19, 40])
def test_matched_dense_tracks_the_attention_size_for_any_feature_count(n_features):
    att = n_parameters(build("attention", make_config("attention", "article", n_features, 20)))
    dense = n_parameters(build("dense", make_config("dense", "matched", n_features, 20)))
    assert abs(dense - att) / att < 0.01


def test_attention_over_a_huge_batch_is_chunked_with_the_same_numbers(monkeypatch):
    import models.attention as attention

    torch.manual_seed(0)
    model = build("attention", make_config("attention", "modern", 19, 20)).eval()
    x = torch.randn(350, 20, 19)
    with torch.no_grad():
        whole = model(x)
        monkeypatch.setattr(attention, "SDPA_CHUNK", 100)   # 4 chunks, the last one ragged
        chunked = model(x)
    torch.testing.assert_close(chunked, whole, rtol=0, atol=1e-6)


@pytest.mark.parametrize("kind", ["attention", "dense", "lstm"])
def test_a_composed_feature_set_sizes_the_model_from_the_dataset(eurusd, kind):
    """`dataset.features = scaled+time+mtf` (31 columns): the model is built for the dataset's
    n_features (as models.train does) and maps its windows to logits."""
    from data import CandleDataset, DatasetSpec, plain_split

    candles = eurusd.iloc[:400]
    spec = DatasetSpec(window=8, features="scaled+time+mtf")
    ds = CandleDataset(candles, spec)
    split = plain_split(candles.index, 0.6, 0.2)
    windows = ds.windows(ds.matrix(ds.fit_normaliser(split)), ds.ends("train", split)[:16])
    assert windows.shape == (16, 8, spec.n_features) and spec.n_features == 31
    preset = "matched" if kind == "dense" else "article"
    model = build(kind, make_config(kind, preset, spec.n_features, spec.window))
    out = model(torch.from_numpy(windows))
    assert out.shape == (16, 3) and torch.isfinite(out).all()
