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
    NEIGHBOURS,
    OrderSpec,
    backfill_order,
    centre_priority,
    neighbour_priority,
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


def d(deg: float) -> float:
    """Squared L2 between unit vectors ``deg`` degrees apart."""
    return 2 - 2 * math.cos(math.radians(deg))


def test_identity_centre_priority_equals_the_hand_computed_example():
    # A = {0, 20, -20} deg (centre 0), B = {90, 120, 150} (centre 120), C = {130, 190, 250} (centre 190)
    angles = [0, 20, -20, 90, 120, 150, 130, 190, 250]
    x = np.array([unit(a) for a in angles], np.float32)
    labels = np.array(list("AAABBBCCC"))
    # anchors (nearest their centre, D_own 0): 8; C's 130 deg item lies 60 deg from its centre and
    # 10 deg from B's: misfiled, 4 + d(60) - d(10); the rest: D_own (C's 250 deg item: d(60), its
    # nearest other centre is A's at 110 deg; B's 150 deg item: d(30) < d(40) to C's centre)
    expected = [8, d(20), d(20), d(30), 8, d(30), 4 + d(60) - d(10), 8, d(60)]
    np.testing.assert_allclose(centre_priority(x, labels), expected, atol=1e-5)
    _, method = uncertainty_scores(x, labels)
    assert method == CENTRES
    order = backfill_order("uncertainty", 9, x, labels).tolist()
    assert set(order[:3]) == {0, 4, 7} and order[3:5] == [6, 8]  # one per identity, misfiled, farthest
    assert set(order[5:7]) == {3, 5} and set(order[7:]) == {1, 2}


def test_the_anchor_is_the_item_nearest_its_centre_and_the_worst_identity_goes_first():
    angles = [0, 10, 50, 200, 230, 240]  # P = {0, 10, 50} (centre 19.7 deg), Q = {200, 230, 240} (223.3 deg)
    x = np.array([unit(a) for a in angles], np.float32)
    labels = np.array(list("PPPQQQ"))
    centre = {k: np.array(x[labels == k].sum(0)) / np.linalg.norm(x[labels == k].sum(0)) for k in "PQ"}
    own = np.array([2 - 2 * x[i] @ centre[labels[i]] for i in range(6)])
    pri = centre_priority(x, labels)
    assert np.argmax(pri[:3] > 8) == 1 and np.argmax(pri[3:] > 8) == 1  # 10 deg and 230 deg: nearest their centres
    np.testing.assert_allclose(pri[[1, 4]], 8 + own[[1, 4]], atol=1e-5)
    assert own[1] > own[4] and backfill_order("uncertainty", 6, x, labels)[:2].tolist() == [1, 4]  # P's is worse


def test_neighbour_priority_equals_the_hand_computed_example():
    x = np.array([unit(a) for a in (0, 10, 30, 100, 200)], np.float32)
    # mean distance to the 3 nearest others: 0 -> 10, 30, 100; 10 -> 0, 30, 100; 30 -> 10, 0, 100;
    # 100 -> 30, 10, 0 (or 200: the same distance); 200 -> 100, 0, 10 (or 30)
    expected = [(d(10) + d(30) + d(100)) / 3, (d(10) + d(20) + d(90)) / 3, (d(20) + d(30) + d(70)) / 3,
                (d(70) + d(90) + d(100)) / 3, (d(100) + d(160) + d(170)) / 3]
    np.testing.assert_allclose(neighbour_priority(x), expected, atol=1e-5)
    _, method = uncertainty_scores(x, None)
    assert method == NEIGHBOURS
    np.testing.assert_array_equal(backfill_order("uncertainty", 5, x, None), [4, 3, 0, 1, 2])


def test_neighbours_drop_the_item_itself_even_when_a_duplicate_ties_with_it():
    x = np.array([unit(0), unit(0), unit(40), unit(90)], np.float32)
    # each duplicate's others: its twin (0), 40 and 90 deg; not itself twice
    expected = [(d(40) + d(90)) / 3, (d(40) + d(90)) / 3, (2 * d(40) + d(50)) / 3, (2 * d(90) + d(50)) / 3]
    np.testing.assert_allclose(neighbour_priority(x), expected, atol=1e-5)


def test_which_priority_the_labels_allow():
    assert uncertainty_method(None) == NEIGHBOURS
    assert uncertainty_method(np.array(["a", "", "b", "b"])) == NEIGHBOURS  # an item without identity
    assert uncertainty_method(np.array(["a", "b", "c"])) == NEIGHBOURS  # one item per identity: no centre to trust
    assert uncertainty_method(np.array(["a", "a", "b", "c", "d"])) == NEIGHBOURS  # 2 of 5 paired
    assert uncertainty_method(np.array(["a", "a", "b"])) == CENTRES  # 2 of 3 paired
    assert uncertainty_method(np.array(["a", "a", "a"])) == CENTRES


def test_uncertainty_order_is_deterministic_and_ties_keep_the_input_order():
    x = np.array([unit(0), unit(90), unit(180), unit(270)], np.float32)  # every priority equal
    np.testing.assert_array_equal(backfill_order("uncertainty", 4, x, None), [0, 1, 2, 3])
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
