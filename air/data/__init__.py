"""The data: MNIST files (mnist), the record format (record_encoding, records), the multi-MNIST
generator (generator, dataset_writer) and the tf.data input pipeline (pipeline)."""
