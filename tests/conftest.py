"""Test configuration: two logical CPU devices, quiet TensorFlow, shared fixtures."""

import os
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

NUM_LOGICAL_CPUS = 2


def pytest_configure(config):
    # Logical devices must exist before TensorFlow initialises its runtime,
    # so this runs before any test module imports a model.
    import tensorflow as tf

    cpus = tf.config.list_physical_devices("CPU")
    tf.config.set_logical_device_configuration(
        cpus[0], [tf.config.LogicalDeviceConfiguration() for _ in range(NUM_LOGICAL_CPUS)]
    )
    # Third-party deprecation noise that says nothing about temzoo's code.
    for module in ("tensorflow", "keras", "tensorflow_datasets", "google.protobuf", "absl", "flatbuffers", "h5py"):
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=module)
    warnings.filterwarnings("ignore", message=".*np.find_common_type.*", category=DeprecationWarning)
    warnings.filterwarnings("ignore", message=".*jsonschema.RefResolver.*", category=DeprecationWarning)
    # Keras converting tensors with np.array(x) under NumPy 2
    warnings.filterwarnings("ignore", message=".*__array__ implementation doesn't accept a copy keyword.*")
