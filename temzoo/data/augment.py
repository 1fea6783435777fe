"""Stateless (seeded) random crops and dihedral augmentation of stacked channels.

Image and target are concatenated along channels before these ops, so both get
exactly the same crop, rotation and flip.
"""

import tensorflow as tf


def random_crop(stack, patch_size, seed):
    """A ``patch_size`` x ``patch_size`` crop of an HxWxC tensor at a seeded random position."""
    channels = tf.shape(stack)[-1]
    tf.debugging.assert_greater_equal(
        tf.shape(stack)[:2],
        tf.constant([patch_size, patch_size]),
        message=f"image smaller than patch_size={patch_size}; use a smaller patch or larger images",
    )
    return tf.image.stateless_random_crop(stack, tf.stack([patch_size, patch_size, channels]), seed=seed)


def dihedral(stack, seed):
    """One of the 8 symmetries of the square (rot90 x k, then optional left-right flip), seeded."""
    seeds = tf.random.experimental.stateless_split(seed, num=2)
    k = tf.random.stateless_uniform([], seeds[0], minval=0, maxval=4, dtype=tf.int32)
    stack = tf.image.rot90(stack, k)
    flip = tf.random.stateless_uniform([], seeds[1]) < 0.5
    return tf.cond(flip, lambda: tf.image.flip_left_right(stack), lambda: stack)
