"""Average label uniqueness (AFML ch. 4): the vectorised count equals the definition bar by bar."""

import numpy as np
import pytest

from data.uniqueness import average_uniqueness, uniqueness_weights


def _by_definition(ends: np.ndarray, h: int) -> np.ndarray:
    """Concurrency c_u = labels whose span (end+1 … end+h) holds bar u; uniqueness = mean 1/c_u."""
    spans = [range(e + 1, e + h + 1) for e in ends]
    c: dict[int, int] = {}
    for span in spans:
        for u in span:
            c[u] = c.get(u, 0) + 1
    return np.array([np.mean([1 / c[u] for u in span]) for span in spans])


def test_hand_made_spans():
    # h = 3, ends 0, 1, 2: bars 1..5 have concurrency 1, 2, 3, 2, 1
    u = average_uniqueness(np.array([0, 1, 2]), 3)
    assert u == pytest.approx([(1 + 1 / 2 + 1 / 3) / 3, (1 / 2 + 1 / 3 + 1 / 2) / 3,
                               (1 / 3 + 1 / 2 + 1) / 3], abs=1e-15)
    # labels that do not overlap are fully unique; h = 1 labels never overlap
    assert average_uniqueness(np.array([0, 3, 10]), 3).tolist() == [1.0, 1.0, 1.0]
    assert average_uniqueness(np.arange(50), 1).tolist() == [1.0] * 50
    # every bar covered by h labels (away from the edges): 1/h
    assert average_uniqueness(np.arange(100), 4)[10:90] == pytest.approx(np.full(80, 0.25),
                                                                          abs=1e-12)
    assert average_uniqueness(np.array([], dtype=int), 5).shape == (0,)
    with pytest.raises(ValueError, match="horizon"):
        average_uniqueness(np.array([1]), 0)


@pytest.mark.parametrize("seed", range(20))
def test_equals_the_definition_on_random_gappy_ends(seed):
    rng = np.random.default_rng(seed)
    h = int(rng.integers(1, 30))
    ends = np.sort(rng.choice(400, size=int(rng.integers(1, 200)), replace=False)) + 7
    # 1e-12: the vectorised form sums 1/c_u over up to ~600 bars and subtracts two such sums
    assert average_uniqueness(ends, h) == pytest.approx(_by_definition(ends, h), abs=1e-12)
    w = uniqueness_weights(ends, h)
    assert w.mean() == pytest.approx(1.0, abs=1e-12) and (w > 0).all()


def test_only_the_labels_given_are_counted():
    """A label's uniqueness reads the spans of the labels passed in, nothing else: adding labels
    after a part's last one (validation, test) cannot change the part's uniqueness when the
    part's spans end before them (purged), and does change it when they overlap."""
    train = np.arange(20, 80)
    h = 6
    alone = average_uniqueness(train, h)
    later = np.r_[train, np.arange(80 + h, 120)]        # starts after the last train span
    assert average_uniqueness(later, h)[:len(train)].tolist() == alone.tolist()
    overlapping = np.r_[train, np.arange(80, 120)]
    assert not np.allclose(average_uniqueness(overlapping, h)[:len(train)], alone)
