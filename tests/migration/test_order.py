"""Backfill order policies (order.py): determinism, the uncertainty scores against hand-computed
examples, and the order a real backfill embeds in (planned once, kept across an interruption)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from harmony.errors import InvalidInput
from harmony.gallery.synthetic import HashEmbedder
from harmony.migration.backfill import backfill_status, run_backfill
from harmony.migration.checkpoint import BackfillDir
from harmony.migration.order import (
    CENTRES,
    MARGIN,
    OrderSpec,
    backfill_order,
    centre_scores,
    margin_scores,
    uncertainty_method,
    uncertainty_scores,
)

DIM = 32


def unit(deg: float) -> list[float]:
    return [math.cos(math.radians(deg)), math.sin(math.radians(deg))]


# -- the policies as pure functions ------------------------------------------------------------

def test_sequential_is_the_input_order_and_random_a_seeded_permutation():
    np.testing.assert_array_equal(backfill_order("sequential", 5), np.arange(5))
    a, b, c = (backfill_order("random", 200, seed=s) for s in (3, 3, 4))
    np.testing.assert_array_equal(a, b)  # same seed, same order
    assert not np.array_equal(a, c)  # another seed, another order
    assert sorted(a.tolist()) == list(range(200)) and not np.array_equal(a, np.arange(200))
    np.testing.assert_array_equal(a, np.random.default_rng(3).permutation(200))  # the documented generator


def test_identity_centre_score_equals_the_hand_computed_example():
    # A = {0 deg, 53.13 deg}, B = {90 deg, 180 deg}, C = {270 deg} on the unit circle
    x = np.array([[1, 0], [0.6, 0.8], [0, 1], [-1, 0], [0, -1]], np.float32)
    labels = np.array(["A", "A", "B", "B", "C"])
    # centres: A = (1.6, 0.8)/|.| = (2, 1)/sqrt5, B = (-1, 1)/sqrt2, C = (0, -1); D = 2 - 2 x.c
    # x0: own D = 2 - 4/sqrt5 = 0.211146; others: B 2 + sqrt2, C 2.0 -> 0.211146 - 2
    # x1: own 0.211146; B 2 - 0.4/sqrt2 = 1.717157, C 3.6 -> 0.211146 - 1.717157
    # x2: own 2 - sqrt2 = 0.585786; A 2 - 2/sqrt5 = 1.105573, C 4 -> 0.585786 - 1.105573
    # x3: own 0.585786; A 2 + 4/sqrt5, C 2.0 -> 0.585786 - 2
    # x4: own 0; A 2 + 2/sqrt5 = 2.894427, B 2 + sqrt2 -> -2.894427
    expected = [-1.788854, -1.506011, -0.519787, -1.414214, -2.894427]
    np.testing.assert_allclose(centre_scores(x, labels), expected, atol=1e-5)
    _, method = uncertainty_scores(x, labels)
    assert method == CENTRES
    np.testing.assert_array_equal(backfill_order("uncertainty", 5, x, labels), [2, 3, 1, 0, 4])


def test_neighbour_margin_score_equals_the_hand_computed_example():
    x = np.array([unit(a) for a in (0, 10, 30, 100)], np.float32)
    d = {a: 2 - 2 * math.cos(math.radians(a)) for a in (10, 20, 30, 70, 90, 100)}
    # nearest and second nearest others: 0 -> 10, 30; 10 -> 0, 30; 30 -> 10, 0; 100 -> 30, 10
    expected = [d[10] - d[30], d[10] - d[20], d[20] - d[30], d[70] - d[90]]
    np.testing.assert_allclose(margin_scores(x), expected, atol=1e-5)
    _, method = uncertainty_scores(x, None)
    assert method == MARGIN
    np.testing.assert_array_equal(backfill_order("uncertainty", 4, x, None), [1, 2, 0, 3])


def test_margin_drops_the_item_itself_even_when_a_duplicate_ties_with_it():
    x = np.array([unit(0), unit(0), unit(40), unit(90)], np.float32)
    d40, d90, d50 = (2 - 2 * math.cos(math.radians(a)) for a in (40, 90, 50))
    # each duplicate's nearest other is its twin (D 0), then 40 deg; the 40 deg item sits equally
    # far from both duplicates (margin 0: the most ambiguous); the 90 deg one: 40 deg, then 0 deg
    np.testing.assert_allclose(margin_scores(x), [0 - d40, 0 - d40, 0.0, d50 - d90], atol=1e-5)


def test_which_score_the_labels_allow():
    assert uncertainty_method(None) == MARGIN
    assert uncertainty_method(np.array(["a", "a", "a"])) == MARGIN  # one identity: no other centre
    assert uncertainty_method(np.array(["a", "", "b"])) == MARGIN  # an item without identity
    assert uncertainty_method(np.array(["a", "b", "b"])) == CENTRES


def test_uncertainty_order_is_deterministic_and_ties_keep_the_input_order():
    x = np.array([unit(0), unit(90), unit(180), unit(270)], np.float32)  # every score equal
    labels = np.array(["a", "b", "c", "d"])
    np.testing.assert_array_equal(backfill_order("uncertainty", 4, x, labels), [0, 1, 2, 3])
    rng = np.random.default_rng(0)
    y = rng.standard_normal((50, 8)).astype(np.float32)
    lab = rng.integers(0, 5, 50).astype(str)
    np.testing.assert_array_equal(backfill_order("uncertainty", 50, y, lab), backfill_order("uncertainty", 50, y, lab))


def test_bad_policy_seed_and_inputs_are_one_line_errors():
    with pytest.raises(InvalidInput, match="unknown backfill order 'fastest'") as e:
        backfill_order("fastest", 3)
    assert "sequential, random, uncertainty" in e.value.hint
    with pytest.raises(InvalidInput, match="seed must be a non-negative integer"):
        OrderSpec("random", -1)
    with pytest.raises(InvalidInput, match="needs the 3 items' stored vectors"):
        backfill_order("uncertainty", 3)
    with pytest.raises(InvalidInput, match="one label per vector"):
        uncertainty_scores(np.zeros((3, 2), np.float32), np.array(["a", "b"]))


# -- the order a backfill embeds in ------------------------------------------------------------

class Recording:
    """HashEmbedder that records the sources it was asked for, in call order."""

    def __init__(self, version: str = "v2"):
        self.inner = HashEmbedder(version, DIM)
        self.seen: list[str] = []

    def __call__(self, sources):
        self.seen += sources
        return self.inner(sources)


def sources_in_seq_order(g) -> list[str]:
    t = g.store.items()
    return [str(s) for s in t.sources[np.argsort(t.seqs, kind="stable")]]


@pytest.mark.parametrize("policy", ["sequential", "random", "uncertainty"])
def test_backfill_embeds_in_the_planned_order_and_resumes_in_the_same_order(make_gallery, policy):
    g = make_gallery(90)
    srcs = sources_in_seq_order(g)
    t = g.store.items()
    rows = np.argsort(t.seqs, kind="stable")
    stored = g.store.vectors([str(i) for i in t.item_ids[rows]], "v1")
    expected = [srcs[i] for i in backfill_order(policy, 90, stored, t.labels[rows].astype(str), seed=11)]
    emb = Recording()
    r = run_backfill(g.store, "v2", emb, batch_size=8, stop_after=4, order=OrderSpec(policy, 11))
    assert not r.complete and emb.seen == expected[:32]
    cursor = BackfillDir(g.store.path, "v2").read_cursor()
    assert (cursor.order, cursor.seed) == (policy, 11)
    assert cursor.score == (CENTRES if policy == "uncertainty" else None)
    st = backfill_status(g.store, "v2")
    assert (st.order, st.done, st.pending) == (policy, 32, 58)
    r = run_backfill(g.store, "v2", emb, batch_size=8)  # no order given: the one started with
    assert r.complete and r.n_resumed == 32 and emb.seen == expected  # the same order, not re-planned
    names = [str(s) for s in g.store.items().item_ids]
    np.testing.assert_array_equal(g.store.vectors(names, "v2"), g.direct("v2", names))


def test_a_resumed_backfill_refuses_another_order(make_gallery):
    g = make_gallery(40)
    run_backfill(g.store, "v2", Recording(), batch_size=8, stop_after=1, order=OrderSpec("random", 1))
    for other in (OrderSpec("random", 2), OrderSpec("uncertainty"), OrderSpec()):
        with pytest.raises(InvalidInput, match=r"runs in random \(seed 1\) order; it cannot change") as e:
            run_backfill(g.store, "v2", Recording(), batch_size=8, order=other)
        assert "without --order" in e.value.hint
    r = run_backfill(g.store, "v2", Recording(), batch_size=8, order=OrderSpec("random", 1))
    assert r.complete and r.n_resumed == 8


def test_items_changed_after_the_start_come_after_the_plan_once(make_gallery):
    g = make_gallery(60)
    expected = [sources_in_seq_order(g)[i] for i in backfill_order("random", 60, seed=5)]
    emb = Recording()
    run_backfill(g.store, "v2", emb, batch_size=10, stop_after=2, order=OrderSpec("random", 5))
    done, later = expected[:20], expected[20:]
    names = {str(s): str(i) for s, i in zip(g.store.items().sources, g.store.items().item_ids)}
    replaced_done, replaced_pending = names[done[0]], names[later[0]]
    g.add([replaced_done, replaced_pending], content="changed")  # both get new seqs
    g.add(["new-a.img", "new-b.img"])
    g.store.remove_items([names[later[1]]])
    run_backfill(g.store, "v2", emb, batch_size=10)
    tail = [str(g.src / i) for i in (replaced_done, replaced_pending, "new-a.img", "new-b.img")]
    assert emb.seen == done + [s for s in later if s not in (later[0], later[1])] + tail
    t = g.store.items()
    names_now = [str(s) for s in t.item_ids]
    assert len(t) == 61 and set(t.versions) == {"v2"} and g.store.index("v2").ntotal == 61
    np.testing.assert_array_equal(g.store.vectors(names_now, "v2"), g.direct("v2", names_now))


def test_uncertainty_reads_the_stored_vectors_and_refuses_ivf(make_gallery):
    g = make_gallery(20, codec="ivf", name="ivf")
    with pytest.raises(InvalidInput, match="codec ivf keeps none") as e:
        run_backfill(g.store, "v2", Recording(), order=OrderSpec("uncertainty"))
    assert "--order random" in e.value.hint
    assert BackfillDir(g.store.path, "v2").read_cursor() is None  # nothing started
