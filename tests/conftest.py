"""Test configuration: two logical CPU devices, quiet TensorFlow, shared fixtures."""

import os

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

NUM_LOGICAL_CPUS = 2
IGNORED_WARNING_MESSAGES = (
    ".*np.find_common_type",
    ".*jsonschema.RefResolver",
    # Keras/TensorFlow converting tensors with np.array(x) under NumPy 2
    ".*__array__ implementation doesn't accept a copy keyword",
)


def pytest_configure(config):
    # Logical devices must exist before TensorFlow initialises its runtime,
    # so this runs before any test module imports a model.
    import tensorflow as tf

    cpus = tf.config.list_physical_devices("CPU")
    tf.config.set_logical_device_configuration(
        cpus[0], [tf.config.LogicalDeviceConfiguration() for _ in range(NUM_LOGICAL_CPUS)]
    )
    # Third-party deprecation noise that says nothing about temzoo's code. As ini lines, not
    # warnings.filterwarnings(): pytest re-applies ini filters inside every test, after its own
    # "always show DeprecationWarning", which overrides filters set here the plain way.
    for module in ("tensorflow", "keras", "tensorflow_datasets", "google.protobuf", "absl", "flatbuffers", "h5py"):
        config.addinivalue_line("filterwarnings", f"ignore::DeprecationWarning:{module}.*")
    for message in IGNORED_WARNING_MESSAGES:
        config.addinivalue_line("filterwarnings", f"ignore:{message}")


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """A tiny untrained two-class segmentation model saved as ``.keras`` with its card (tests copy it before
    changing the card)."""
    import temzoo
    import temzoo.tasks as tasks

    folder = tmp_path_factory.mktemp("models")
    seg = tasks.segmentation(temzoo.build("unet_b2_p22", base_filters=4), num_classes=2)
    tasks.save(seg, folder / "seg.keras", name="tiny_seg")
    return str(folder / "seg.keras")
