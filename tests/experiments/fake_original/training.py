"""A stand-in for the original project's training.py in tests (tests/experiments/test_original_code.py).

It keeps what run_original.py relies on: the command line (-r, -o, -t), the data files under
multi_mnist_data/, the results folder with summary/, a module-level session with the original's
ConfigProto, scalar summaries of the test set every 50 iterations under ".../summaries/" tags,
a training fetch list [training op, loss, accuracy, global step] and the loop that ends on
OutOfRangeError. The "model" is two numbers.
"""
import argparse
import os

import tensorflow as tf

from air.air_model import TinyModel  # The stand-in's own `air` package, never this repository's.
from multi_mnist import read_digits

tf.compat.v1.disable_eager_execution()
v1 = tf.compat.v1

parser = argparse.ArgumentParser()
parser.add_argument("-r", "--results-folder", default="air_results")
parser.add_argument("-o", "--overwrite-results", type=int, choices=[0, 1], default=0)
parser.add_argument("-t", "--reader-threads", type=int, default=4)
args = parser.parse_args()

os.makedirs(os.path.join(args.results_folder, "summary"))
train_digits = read_digits("multi_mnist_data/common.tfrecords")
test_digits = read_digits("multi_mnist_data/test.tfrecords")
print("read %d training and %d test records" % (len(train_digits), len(test_digits)))

model = TinyModel(len(train_digits), len(test_digits))
config = v1.ConfigProto()
config.gpu_options.allow_growth = True

with v1.Session(config=config) as sess:
    sess.run(v1.global_variables_initializer())
    writer = v1.summary.FileWriter(os.path.join(args.results_folder, "summary"), sess.graph)
    summaries = v1.summary.merge(model.summaries)
    try:
        step = 0
        while True:
            if step % 50 == 0:
                writer.add_summary(sess.run(summaries, {model.step: step}), step)
            _, loss, accuracy, step = sess.run(
                [model.training, model.loss, model.accuracy, model.global_step])
            print("iteration {}\tloss {:.3f}\taccuracy {:.2f}".format(step, loss, accuracy))
    except tf.errors.OutOfRangeError:
        print("training has ended")
