"""The record format: exact features, numpy reader, and the tf.data pipeline in graph mode."""

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from air.data import pipeline, records


def sample_examples():
    """Three small records with 0, 2 and 1 digits on a 6x5 canvas."""
    rng = np.random.RandomState(0)
    return [
        dict(image=rng.rand(6, 5), labels=[], indices=[], positions=np.zeros([0, 2]),
             boxes=np.zeros([0, 2])),
        dict(image=rng.rand(6, 5), labels=[3, 7], indices=[10, 59999], positions=[[0, 1], [2, 3]],
             boxes=[[2, 2], [3, 3]]),
        dict(image=rng.rand(6, 5), labels=[9], indices=[5], positions=[[4, 0]], boxes=[[1, 6]]),
    ]


@pytest.fixture
def record_file(tmp_path):
    path = str(tmp_path / "sample.tfrecords")
    assert records.write_examples(path, sample_examples()) == 3
    return path


def test_example_has_exactly_the_documented_features():
    serialized = records.encode_example(**sample_examples()[1])
    feature = tf.train.Example.FromString(serialized).features.feature
    assert sorted(feature.keys()) == sorted(records.FEATURES)
    assert feature["digits"].int64_list.value == [2]
    assert feature["height"].int64_list.value == [6] and feature["width"].int64_list.value == [5]
    assert len(feature["image"].bytes_list.value[0]) == 6 * 5 * 4
    # Little-endian int32, x then y for positions, width then height for boxes.
    assert np.frombuffer(feature["positions"].bytes_list.value[0], "<i4").tolist() == [0, 1, 2, 3]
    assert np.frombuffer(feature["indices"].bytes_list.value[0], "<i4").tolist() == [10, 59999]
    assert np.frombuffer(feature["labels"].bytes_list.value[0], "<i4").tolist() == [3, 7]


def test_encode_rejects_inconsistent_metadata():
    with pytest.raises(ValueError, match="same digits"):
        records.encode_example(np.zeros([4, 4]), labels=[1, 2], indices=[1], positions=[[0, 0]],
                               boxes=[[1, 1]])


def test_read_records_pads_with_minus_one(record_file):
    data = records.read_records(record_file)
    examples = sample_examples()
    assert data.images.shape == (3, 6, 5) and data.images.dtype == np.float32
    np.testing.assert_array_equal(data.images[1], examples[1]["image"].astype(np.float32))
    assert data.digits.tolist() == [0, 2, 1]
    assert data.labels.tolist() == [[-1, -1], [3, 7], [9, -1]]
    assert data.indices.tolist() == [[-1, -1], [10, 59999], [5, -1]]
    assert data.positions.shape == (3, 2, 2) and data.positions[2].tolist() == [[4, 0], [-1, -1]]
    assert data.boxes[1].tolist() == [[2, 2], [3, 3]]
    assert records.image_shape(record_file) == (6, 5)


def test_write_is_atomic_on_failure(tmp_path):
    path = tmp_path / "out.tfrecords"

    def failing():
        yield sample_examples()[0]
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        records.write_examples(str(path), failing())
    assert list(tmp_path.iterdir()) == []


def run_batches(dataset, count):
    """Evaluates ``count`` batches of a dataset built in a fresh graph (TF1 graph mode)."""
    batch = tf.data.make_one_shot_iterator(dataset).get_next()
    with tf.Session() as session:
        return batch, [session.run(batch) for _ in range(count)]


def test_batched_dataset_in_graph_mode(record_file):
    with tf.Graph().as_default():
        dataset = pipeline.batched_dataset(record_file, batch_size=2, shuffle=True, seed=3)
        batch, values = run_batches(dataset, 6)  # 12 images: the file repeats.
    assert batch["image"].shape.as_list() == [None, 6, 5]
    assert batch["image"].dtype == tf.float32 and batch["digits"].dtype == tf.int32
    seen = np.concatenate([v["digits"] for v in values])
    assert sorted(seen.tolist()) == sorted([0, 2, 1] * 4)
    assert values[0]["image"].shape == (2, 6, 5)


def test_batched_dataset_once_in_order_with_metadata(record_file):
    with tf.Graph().as_default():
        dataset = pipeline.batched_dataset(record_file, batch_size=3, shuffle=False, repeat=False,
                                          with_metadata=True, drop_remainder=True)
        batch, values = run_batches(dataset, 1)
    assert batch["image"].shape.as_list() == [3, 6, 5]
    value = values[0]
    expected = records.read_records(record_file)
    np.testing.assert_array_equal(value["image"], expected.images)
    np.testing.assert_array_equal(value["labels"], expected.labels)
    np.testing.assert_array_equal(value["positions"], expected.positions)
    np.testing.assert_array_equal(value["boxes"], expected.boxes)
    np.testing.assert_array_equal(value["indices"], expected.indices)


def test_plain_python_encoder_matches_tensorflow():
    for example in sample_examples():
        ours = records.encode_example(**example)
        feature = {
            "image": tf.train.Feature(bytes_list=tf.train.BytesList(
                value=[np.asarray(example["image"], "<f4").tobytes()])),
            "digits": tf.train.Feature(int64_list=tf.train.Int64List(value=[len(example["labels"])])),
            "height": tf.train.Feature(int64_list=tf.train.Int64List(value=[6])),
            "width": tf.train.Feature(int64_list=tf.train.Int64List(value=[5])),
        }
        for name in ("indices", "positions", "boxes", "labels"):
            raw = np.asarray(example[name], "<i4").tobytes()
            feature[name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[raw]))
        theirs = tf.train.Example(features=tf.train.Features(feature=feature))
        assert ours == theirs.SerializeToString(deterministic=True)
    # Multi-byte varints (lengths >= 128, large and negative int64) also agree.
    from air.data import record_encoding
    for values in ([0], [1, 127, 128, 300, 2 ** 40], [-1, -(2 ** 63)]):
        ours = record_encoding.example({"a": record_encoding.int64_feature(values),
                                        "b" * 200: record_encoding.bytes_feature(b"x" * 20000)})
        theirs = tf.train.Example(features=tf.train.Features(feature={
            "a": tf.train.Feature(int64_list=tf.train.Int64List(value=values)),
            "b" * 200: tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"x" * 20000]))}))
        assert ours == theirs.SerializeToString(deterministic=True)
