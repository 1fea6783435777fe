"""Walk a functional Keras model as a flat list of layer calls.

Nested models (such as a ``keras.applications`` encoder used as a layer) are
opened up, so callers see every primitive layer once per call, in topological
order. Used by :mod:`temzoo.receptive_field` and by the benchmark FLOP count.

Keras has no public API for a functional model's graph of layer calls. The
private attributes temzoo needs (a functional model's ``_nodes_by_depth``, a
built Sequential model's ``_functional`` and a symbolic tensor's
``_keras_history``) are read here only, in :func:`_graph_of`, :func:`_functional`
and :func:`producer`; if a Keras release renames them, those fail with
:class:`KerasInternalsError` naming the attribute and the Keras version, and
``tests/test_receptive_field.py`` fails loudly. Nothing else in temzoo reads
private Keras graph attributes.
"""

from dataclasses import dataclass

import keras


@dataclass
class Call:
    """One call of ``layer`` (``None`` for an alias that passes a tensor through).

    ``inputs`` and ``outputs`` are tensor keys, unique across nesting levels.
    """

    layer: object
    inputs: list
    outputs: list
    shapes_in: list
    shapes_out: list


class KerasInternalsError(RuntimeError):
    """The installed Keras no longer has a private attribute this module reads."""


def _functional(model):
    """The functional model behind ``model`` (a built Sequential wraps one in ``_functional``)."""
    if isinstance(model, keras.Sequential):
        if not model.built:
            raise ValueError("The Sequential model is not built yet; call it on data first.")
        inner = getattr(model, "_functional", None)
        if inner is None:
            raise KerasInternalsError(
                f"Keras {keras.__version__}: a built Sequential model has no '_functional' attribute any more; "
                "temzoo.models.graph needs updating for this Keras release."
            )
        return inner
    return model


def _graph_of(fn):
    """``{depth: [nodes]}`` of functional model ``fn`` (Keras' private ``_nodes_by_depth``)."""
    graph = getattr(fn, "_nodes_by_depth", None)
    if graph is None:
        if isinstance(fn, keras.Model) and type(fn).__name__ == "Functional":
            raise KerasInternalsError(
                f"Keras {keras.__version__}: functional models have no '_nodes_by_depth' attribute any more; "
                "temzoo.models.graph needs updating for this Keras release."
            )
        raise ValueError(f"{getattr(fn, 'name', fn)!r} is not a functional Keras model.")
    return graph


def producer(tensor):
    """The layer whose call produced the symbolic ``tensor`` (Keras' private ``_keras_history``)."""
    history = getattr(tensor, "_keras_history", None)
    if history is None or not hasattr(history, "operation"):
        raise KerasInternalsError(
            f"Keras {keras.__version__}: a symbolic tensor has no '_keras_history.operation' any more; "
            "temzoo.models.graph needs updating for this Keras release."
        )
    return history.operation


def _is_functional(layer):
    return isinstance(layer, keras.Model) and (
        hasattr(layer, "_nodes_by_depth") or (isinstance(layer, keras.Sequential) and layer.built)
    )


def flatten_calls(model):
    """Return ``(calls, input_keys, output_keys)`` for a functional ``model``."""
    counter = [0]

    def walk(fn, scope, calls):
        keys = {}

        def key(tensor):
            if id(tensor) not in keys:
                keys[id(tensor)] = (scope, id(tensor))
            return keys[id(tensor)]

        graph = _graph_of(fn)
        for depth in sorted(graph, reverse=True):
            for node in graph[depth]:
                if node.operation is None or node.is_input:
                    continue
                op = node.operation
                ins = [key(t) for t in node.input_tensors]
                outs = [key(t) for t in node.outputs]
                shapes_in = [tuple(t.shape) for t in node.input_tensors]
                shapes_out = [tuple(t.shape) for t in node.outputs]
                if _is_functional(op):
                    inner = _functional(op)
                    counter[0] += 1
                    inner_scope = (scope, op.name, counter[0])
                    inner_in, inner_out = walk(inner, inner_scope, calls)
                    for outer, inner_key, shape in zip(ins, inner_in, shapes_in, strict=True):
                        calls.append(Call(None, [outer], [inner_key], [shape], [shape]))
                    for outer, inner_key, shape in zip(outs, inner_out, shapes_out, strict=True):
                        calls.append(Call(None, [inner_key], [outer], [shape], [shape]))
                else:
                    calls.append(Call(op, ins, outs, shapes_in, shapes_out))
        return [key(t) for t in fn.inputs], [key(t) for t in fn.outputs]

    calls = []
    fn = _functional(model)
    inputs, outputs = walk(fn, "model", calls)
    return _topological(calls, inputs), inputs, outputs


def _topological(calls, inputs):
    """Order calls so that every tensor is produced before it is used."""
    ready = set(inputs)
    pending = list(calls)
    ordered = []
    while pending:
        rest = []
        for call in pending:
            if all(k in ready for k in call.inputs):
                ordered.append(call)
                ready.update(call.outputs)
            else:
                rest.append(call)
        if len(rest) == len(pending):
            raise ValueError("The model graph has tensors that no input reaches.")
        pending = rest
    return ordered
