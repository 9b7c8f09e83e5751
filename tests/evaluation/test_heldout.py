"""air/evaluation/heldout.py's metrics as numbers: box IoU, optimal matching of boxes, the box
metrics, the window heights and the ELBO by digit count and outcome (the evaluator itself runs in
test_evaluate.py on a handmade model)."""
import itertools
import re

import numpy as np
import pytest

from air.data import records
from air.evaluation import heldout


def test_box_iou_of_known_overlaps():
    a = (0, 0, 10, 10)
    cases = [
        ((0, 0, 10, 10), 1.0),              # identical
        ((5, 0, 10, 10), 50.0 / 150.0),     # half shifted along x
        ((5, 5, 10, 10), 25.0 / 175.0),     # quarter overlap
        ((2, 2, 5, 5), 25.0 / 100.0),       # contained
        ((10, 0, 10, 10), 0.0),             # touching edges
        ((30, 30, 4, 4), 0.0),              # far away
        ((0, 0, 0, 10), 0.0),               # no area
    ]
    iou = heldout.box_iou([a], [b for b, _ in cases])
    assert iou.shape == (1, len(cases))
    np.testing.assert_allclose(iou[0], [v for _, v in cases], atol=1e-12)
    # Symmetric, and fractional coordinates work (the model's boxes are not whole pixels).
    np.testing.assert_allclose(heldout.box_iou([b for b, _ in cases], [a])[:, 0], iou[0])
    assert heldout.box_iou([(0.5, 0, 1, 1)], [(0, 0, 1, 1)])[0, 0] == pytest.approx(1 / 3.)


def test_box_iou_matches_a_naive_loop():
    rng = np.random.RandomState(0)
    a = np.concatenate([rng.uniform(0, 40, (7, 2)), rng.uniform(0, 20, (7, 2))], axis=1)
    b = np.concatenate([rng.uniform(0, 40, (5, 2)), rng.uniform(0, 20, (5, 2))], axis=1)

    def naive(p, q):
        width = max(0.0, min(p[0] + p[2], q[0] + q[2]) - max(p[0], q[0]))
        height = max(0.0, min(p[1] + p[3], q[1] + q[3]) - max(p[1], q[1]))
        inter = width * height
        return inter / (p[2] * p[3] + q[2] * q[3] - inter)

    expected = np.array([[naive(p, q) for q in b] for p in a])
    np.testing.assert_allclose(heldout.box_iou(a, b), expected, rtol=1e-12)
    assert heldout.box_iou(a, np.zeros([0, 4])).shape == (7, 0)


def test_matching_is_optimal_where_greedy_is_not():
    # Boxes of equal height on one row: IoU is the 1-D overlap / union of the x intervals.
    true = [(0, 0, 10, 10), (6, 0, 10, 10)]
    predicted = [(1, 0, 10, 10),   # IoU 9/11 with true 0, 5/15 with true 1
                 (-2, 0, 10, 10)]  # IoU 8/12 with true 0, 2/18 with true 1
    # Greedy (best pair first) takes 0-0 and then 1-1: 9/11 + 2/18 = 0.93 < 5/15 + 8/12 = 1.
    rows, columns, ious = heldout.match_boxes(predicted, true)
    pairs = sorted(zip(rows.tolist(), columns.tolist()))
    assert pairs == [(0, 1), (1, 0)]
    np.testing.assert_allclose(sorted(ious), sorted([5 / 15., 8 / 12.]))


def test_matching_agrees_with_brute_force():
    rng = np.random.RandomState(1)
    for trial in range(30):
        n_pred, n_true = rng.randint(0, 4), rng.randint(0, 4)
        predicted = np.concatenate([rng.uniform(0, 20, (n_pred, 2)),
                                    rng.uniform(4, 20, (n_pred, 2))], axis=1)
        true = np.concatenate([rng.uniform(0, 20, (n_true, 2)),
                               rng.uniform(4, 20, (n_true, 2))], axis=1)
        rows, columns, ious = heldout.match_boxes(predicted, true)
        assert len(rows) == len(columns) == len(ious) == min(n_pred, n_true)
        assert len(set(rows.tolist())) == len(rows) and len(set(columns.tolist())) == len(columns)
        iou = heldout.box_iou(predicted, true)
        best = 0.0
        if n_pred <= n_true:
            for chosen in itertools.permutations(range(n_true), n_pred):
                best = max(best, sum(iou[i, j] for i, j in enumerate(chosen)))
        else:
            for chosen in itertools.permutations(range(n_pred), n_true):
                best = max(best, sum(iou[i, j] for j, i in enumerate(chosen)))
        assert np.sum(ious) == pytest.approx(best, abs=1e-9)


def test_box_metrics_pool_matched_pairs_and_count_every_true_digit():
    pad = records.PAD
    predictions = {
        "true_counts": np.array([2, 1, 0]),
        "true_positions": np.array([[[0, 0], [20, 20]], [[0, 0], [pad, pad]],
                                    [[pad, pad], [pad, pad]]]),
        "true_boxes": np.array([[[10, 10], [10, 10]], [[10, 10], [pad, pad]],
                                [[pad, pad], [pad, pad]]]),
        # Image 0: one live box on the first digit (the second is missed); image 1: a box
        # shifted by half (IoU 1/3) and a dead step far away; image 2: a spurious box.
        "boxes": np.array([[[0, 0, 10, 10], [20, 20, 10, 10]],
                           [[5, 0, 10, 10], [0, 0, 10, 10]],
                           [[0, 0, 10, 10], [0, 0, 10, 10]]], np.float32),
        "live": np.array([[1, 0], [1, 0], [1, 0]], np.float32),
    }
    metrics = heldout.box_metrics(predictions)
    assert metrics["mean_iou"] == pytest.approx((1.0 + 1 / 3.) / 2)
    assert metrics["box_recall_iou50"] == pytest.approx(1 / 3.)
    predictions["live"][:] = 0
    assert heldout.box_metrics(predictions) == {"mean_iou": None, "box_recall_iou50": 0.0}


def test_window_heights_by_count_and_outcome():
    pad = records.PAD
    predictions = {
        "true_counts": np.array([1, 1, 2, 0]),
        "digit_count": np.array([1, 2, 2, 0]),
        "true_boxes": np.array([[[10, 20], [pad, pad]], [[10, 18], [pad, pad]],
                                [[12, 16], [12, 22]], [[pad, pad], [pad, pad]]]),
        # Heights 22 (right), 14 and 12 (a digit split in two), 20 and 24 (right), and a
        # dead step of height 40 in every image, which must not count.
        "boxes": np.array([[[0, 0, 22, 22], [0, 0, 40, 40], [0, 0, 40, 40]],
                           [[0, 0, 14, 14], [0, 0, 12, 12], [0, 0, 40, 40]],
                           [[0, 0, 20, 20], [0, 0, 24, 24], [0, 0, 40, 40]],
                           [[0, 0, 40, 40], [0, 0, 40, 40], [0, 0, 40, 40]]], np.float32),
        "live": np.array([[1, 0, 0], [1, 1, 0], [1, 1, 0], [0, 0, 0]], np.float32),
    }
    metrics = heldout.window_size_metrics(predictions)
    assert metrics["window_height"] == {
        "0": {"right": None, "over": None, "under": None},
        "1": {"right": 22.0, "over": 13.0, "under": None},
        "2": {"right": 22.0, "over": None, "under": None}}
    assert metrics["true_digit_height"] == pytest.approx((20 + 18 + 16 + 22) / 4.0)
    text = heldout.format_report(dict(
        {key: None for key in heldout.REPORT_KEYS}, images=4, count_accuracy=0.75,
        count_accuracy_by_digits={"0": 1.0, "1": 0.5, "2": 1.0}, confusion=[[1, 0, 0]] * 3,
        z_pres_prior_log_odds=-20.0, seed=0, elbo=-1.0, elbo_samples=1,
        plugin_elbo_at_means=-1.0, elbo_by_outcome={"1": {"right": -1.0, "over": None,
                                                          "under": None}}, **metrics))
    assert "true digits 19.0 px" in text
    assert re.search(r"\n1 +22\.0 +13\.0 +n/a\n", text), text


def test_z_pres_log_odds_by_count_matches_a_naive_loop():
    rng = np.random.RandomState(0)
    true_counts = rng.randint(0, 3, 40)
    log_odds = rng.normal(0.0, 20.0, [40, 3]).astype(np.float32)
    attempted = (rng.uniform(size=[40, 3]) < [1.0, 0.7, 0.4]).astype(np.float32)
    attempted[true_counts == 2, 2] = 0  # a cell without attempts reads as None
    by_count = heldout.z_pres_log_odds_by_count(dict(
        true_counts=true_counts, z_pres_log_odds=log_odds, attempted=attempted))
    assert sorted(by_count) == ["0", "1", "2"]
    for k in range(3):
        for t in range(3):
            values = [float(log_odds[i, t]) for i in range(40)
                      if true_counts[i] == k and attempted[i, t] == 1]
            expected = ([np.median(values), min(values), max(values)] if values else None)
            if expected is None:
                assert by_count[str(k)][t] is None
            else:
                np.testing.assert_allclose(by_count[str(k)][t], expected, rtol=1e-6)
    assert by_count["2"][2] is None


def test_elbo_by_count_and_outcome_averages_the_images_of_each_cell():
    predictions = {"true_counts": np.array([1, 1, 1, 2, 0, 2]),
                   "digit_count": np.array([1, 2, 2, 1, 0, 2])}
    per_image = [-170.0, -240.0, -260.0, -900.0, -0.5, -380.0]
    assert heldout.elbo_by_outcome(predictions, per_image) == {
        "0": {"right": -0.5, "over": None, "under": None},
        "1": {"right": -170.0, "over": -250.0, "under": None},
        "2": {"right": -380.0, "over": None, "under": -900.0}}


# --- evaluate.py end to end ---------------------------------------------------------------
