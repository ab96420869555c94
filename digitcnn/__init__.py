"""Training side: MNIST data, LeNet models, tf.distribute strategy choice, training loop."""
