"""The click app behind ``temzoo-cli`` (installed as ``temzoo_cli``).

Every command is a thin shell over a library function; heavy imports
(TensorFlow, Keras) happen inside the commands so ``--help`` stays fast.
"""
